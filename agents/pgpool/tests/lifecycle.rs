//! The pgpool agent against a real pgpool-II 4.3 in front of a real
//! PostgreSQL 15 primary and standby: the OCF lifecycle, the pid-file and
//! orphan failures (DESIGN.md failures 1 and 5), a stop under load and a
//! frozen pgpool.

mod common;

use common::setup;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use ocf::Status;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tusk_testkit::{postgres_user, wait_until, Guard};

#[test]
fn start_monitor_stop_and_their_repeats() {
    let s = setup("pgpool-lifecycle", &[]);
    s.agent().run("monitor").expect(Status::NotRunning);
    let started = s.agent().run("start").expect(Status::Success);
    eprintln!(
        "start took {:.3}s:\n{}",
        started.took.as_secs_f64(),
        started.stderr
    );
    let main = s.main_pid().expect("a pid file");
    let monitor = s.agent().run("monitor").expect(Status::Success);
    eprintln!(
        "monitor took {:.3}s:\n{}",
        monitor.took.as_secs_f64(),
        monitor.stderr
    );
    assert_eq!(s.pool.psql("SELECT 1"), "1", "clients get through pgpool");
    s.agent().run("start").expect(Status::Success);
    assert_eq!(
        s.main_pid(),
        Some(main),
        "a second start must not restart pgpool"
    );
    let stopped = s.agent().run("stop").expect(Status::Success);
    eprintln!("stop took {:.3}s", stopped.took.as_secs_f64());
    s.assert_stopped();
    s.agent().run("monitor").expect(Status::NotRunning);
    s.agent().run("stop").expect(Status::Success);
    s.agent().run("start").expect(Status::Success);
    s.agent().run("monitor").expect(Status::Success);
    s.agent().run("stop").expect(Status::Success);
    s.assert_stopped();
}

/// A `sleep` run as the postgres user: the process a reused PID names.
fn sleeper_of_postgres() -> Guard {
    let pg = postgres_user();
    Guard(
        Command::new("sleep")
            .arg("600")
            .uid(pg.uid.as_raw())
            .gid(pg.gid.as_raw())
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

fn write_pid_file(s: &common::Setup, content: &[u8]) {
    std::fs::write(&s.pool.pid_file, content).unwrap();
    let pg = postgres_user();
    nix::unistd::chown(&s.pool.pid_file, Some(pg.uid), Some(pg.gid)).unwrap();
}

#[test]
fn a_pid_file_naming_a_live_process_of_the_postgres_user_neither_runs_nor_blocks() {
    let s = setup("pgpool-reused-pid", &[]);
    let mut sleeper = sleeper_of_postgres();
    let forged = sleeper.0.id();
    // pgpool's own format: the PID and a NUL. pgpool itself refuses to
    // start over it (kill(pid, 0) succeeds: docs/pgpool-facts.md).
    write_pid_file(&s, format!("{forged}\0").as_bytes());
    s.agent().run("monitor").expect(Status::NotRunning);
    s.agent().run("stop").expect(Status::Success);
    assert!(
        sleeper.is_alive(),
        "stop must not signal an unrelated process"
    );
    let start = s.agent().run("start").expect(Status::Success);
    assert!(start.stderr.contains("is stale"), "{}", start.stderr);
    assert!(sleeper.is_alive());
    let main = s.main_pid().unwrap();
    assert_ne!(main, forged as i32);
    s.agent().run("monitor").expect(Status::Success);
    assert!(s.pool.pid_file.with_extension("pid.tusk-stale").exists());
    s.agent().run("stop").expect(Status::Success);
    assert!(sleeper.is_alive());
    s.assert_stopped();
}

#[test]
fn a_pid_file_naming_a_dead_pid_is_moved_aside() {
    let s = setup("pgpool-dead-pid", &[]);
    let mut gone = Command::new("true").spawn().unwrap();
    let dead = gone.id();
    gone.wait().unwrap();
    write_pid_file(&s, format!("{dead}\0").as_bytes());
    s.agent().run("monitor").expect(Status::NotRunning);
    s.agent().run("start").expect(Status::Success);
    s.agent().run("monitor").expect(Status::Success);
    s.agent().run("stop").expect(Status::Success);
}

/// What the OOM killer does: SIGKILL of the main process only. Its children
/// keep listening and serving; a probe must not call that stopped.
#[test]
fn children_left_listening_by_a_killed_main_process_fail_the_monitor_and_stop_removes_them() {
    let s = setup("pgpool-orphans", &[]);
    s.agent().run("start").expect(Status::Success);
    let main = s.main_pid().unwrap();
    let children: Vec<i32> = s.processes().into_iter().filter(|p| *p != main).collect();
    assert!(!children.is_empty());
    kill(Pid::from_raw(main), Signal::SIGKILL).unwrap();
    assert!(wait_until(Duration::from_secs(10), || !s
        .processes()
        .contains(&main)));
    assert!(!s.listeners().is_empty(), "the children still listen");
    let probe = s.agent().run("monitor").expect(Status::ErrGeneric);
    assert!(
        probe.reason().contains("without a main process"),
        "{}",
        probe.reason()
    );
    let stop = s.agent().run("stop").expect(Status::Success);
    eprintln!(
        "stop of the orphans: {:.3}s\n{}",
        stop.took.as_secs_f64(),
        stop.stderr
    );
    s.assert_stopped();
    // The killed main process's shared memory is gone with it.
    let shm = std::fs::read_to_string("/proc/sysvipc/shm").unwrap();
    let left = tusk_pgpool::ipc::parse_segments(&shm)
        .into_iter()
        .filter(|seg| seg.creator_pid == main)
        .count();
    assert_eq!(left, 0, "{shm}");
    s.agent().run("monitor").expect(Status::NotRunning);
    s.agent().run("start").expect(Status::Success);
    s.agent().run("monitor").expect(Status::Success);
    s.agent().run("stop").expect(Status::Success);
    s.assert_stopped();
}

/// Start finds the orphans itself, without a stop in between.
#[test]
fn start_ends_the_orphans_of_a_killed_main_process_first() {
    let s = setup("pgpool-orphans-start", &[]);
    s.agent().run("start").expect(Status::Success);
    let main = s.main_pid().unwrap();
    let orphans: Vec<i32> = s.processes().into_iter().filter(|p| *p != main).collect();
    kill(Pid::from_raw(main), Signal::SIGKILL).unwrap();
    assert!(wait_until(Duration::from_secs(10), || !s
        .processes()
        .contains(&main)));
    let start = s.agent().run("start").expect(Status::Success);
    assert!(
        start.stderr.contains("without a main process"),
        "{}",
        start.stderr
    );
    let now = s.processes();
    assert!(
        orphans.iter().all(|p| !now.contains(p)),
        "orphans left: {now:?}"
    );
    // One generation of listeners, the new main process's.
    assert_eq!(s.listeners().len(), 2, "{:?}", s.listeners());
    s.agent().run("monitor").expect(Status::Success);
    s.agent().run("stop").expect(Status::Success);
    s.assert_stopped();
}

#[test]
fn stop_succeeds_under_client_load() {
    let s = setup("pgpool-load", &[]);
    s.agent().run("start").expect(Status::Success);
    // Sessions that would keep a smart shutdown waiting for 10 minutes,
    // and a client writing in a loop.
    s.primary.psql("CREATE TABLE t (v int)");
    let mut clients: Vec<Guard> = (0..3)
        .map(|_| {
            Guard(
                s.pool
                    .psql_command("SELECT pg_sleep(600)")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap(),
            )
        })
        .collect();
    let mut writer = s.pool.psql_command(
        "DO $$ BEGIN FOR i IN 1..1000000 LOOP INSERT INTO t VALUES (i); COMMIT; END LOOP; END $$",
    );
    clients.push(Guard(
        writer
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    ));
    assert!(
        wait_until(Duration::from_secs(20), || s
            .primary
            .psql("SELECT count(*) FROM t")
            != "0"),
        "the writer never wrote"
    );
    let stop = s
        .agent()
        .timeout_ms(30_000)
        .run("stop")
        .expect(Status::Success);
    eprintln!(
        "stop under load: {:.3}s\n{}",
        stop.took.as_secs_f64(),
        stop.stderr
    );
    // A fast shutdown ends clients in the middle of a query; pgpool's own
    // shutdown, no SIGKILL, so it removes its sockets and System V memory.
    assert!(stop.stderr.contains("fast shutdown"), "{}", stop.stderr);
    assert!(!stop.stderr.contains("SIGKILL"), "{}", stop.stderr);
    assert!(stop.took < Duration::from_secs(10), "{:?}", stop.took);
    s.assert_stopped();
    for c in &mut clients {
        assert!(
            wait_until(Duration::from_secs(10), || !c.is_alive()),
            "a client still waits on a stopped pgpool"
        );
    }
}

/// A pgpool that does not answer (SIGSTOP) is a failure, answered inside
/// the monitor's timeout: never "not running", or Pacemaker would start a
/// second one beside it.
#[test]
fn a_frozen_pgpool_fails_the_monitor_in_time_and_stop_still_ends_it() {
    let s = setup("pgpool-frozen", &[]);
    s.agent().run("start").expect(Status::Success);
    s.pool.freeze();
    let started = Instant::now();
    let monitor = s
        .agent()
        .timeout_ms(5_000)
        .run("monitor")
        .expect(Status::ErrGeneric);
    let took = started.elapsed();
    eprintln!(
        "monitor of a frozen pgpool: {:.3}s: {}",
        took.as_secs_f64(),
        monitor.reason()
    );
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(
        monitor.reason().contains("does not answer"),
        "{}",
        monitor.reason()
    );
    let stop = s
        .agent()
        .timeout_ms(20_000)
        .run("stop")
        .expect(Status::Success);
    eprintln!(
        "stop of a frozen pgpool: {:.3}s\n{}",
        stop.took.as_secs_f64(),
        stop.stderr
    );
    s.assert_stopped();
    s.agent().run("monitor").expect(Status::NotRunning);
}

/// Stop of one configuration never touches another's pgpool.
#[test]
fn another_configurations_pgpool_is_never_signalled() {
    let s = setup("pgpool-neighbour", &[]);
    let mut neighbour = tusk_testkit::pgpool::Pgpool::new(&[tusk_testkit::pgpool::Backend {
        instance: &s.primary,
        application_name: "node1",
    }]);
    neighbour.start();
    let theirs = neighbour.main_pid().unwrap();
    let before: Vec<i32> = neighbour.processes().iter().map(|p| p.pid).collect();
    // Our pid file names their main process.
    write_pid_file(&s, format!("{theirs}\0").as_bytes());
    s.agent().run("monitor").expect(Status::NotRunning);
    s.agent().run("stop").expect(Status::Success);
    s.agent().run("start").expect(Status::Success);
    s.agent().run("stop").expect(Status::Success);
    let after: Vec<i32> = neighbour.processes().iter().map(|p| p.pid).collect();
    assert_eq!(before, after, "the neighbour's pgpool was touched");
    assert_eq!(neighbour.running_pid(), Some(theirs));
}
