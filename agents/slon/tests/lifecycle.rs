//! The agent against a real Slony-I 2.2 cluster: start, monitor, stop and
//! their repeats, probes, pid files that lie, orphans, a frozen slon.

mod common;

use common::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use ocf::Status;
use std::time::{Duration, Instant};
use tusk_testkit::slony::SlonyCluster;

#[test]
fn start_monitor_stop_and_their_repeats() {
    let cluster = SlonyCluster::new(2);
    let _notes = notes_of(&cluster);
    probe(agent(&cluster, 1)).expect(Status::NotRunning);

    let started = Instant::now();
    let out = agent(&cluster, 1).run("start").expect(Status::Success);
    let start_took = started.elapsed();
    let (backend, app) = lock_holder(&cluster, 1).expect("a lock row");
    assert_eq!(app.as_deref(), Some("slon.local_listen"), "{}", out.stderr);
    let procs = slons_of(&cluster, 1);
    assert_eq!(procs.len(), 2, "watchdog and worker: {procs:?}");
    let watchdog = procs
        .iter()
        .find(|p| p.ppid != procs[0].pid || p.pid == procs[0].pid);
    assert!(watchdog.is_some());

    monitor(agent(&cluster, 1)).expect(Status::Success);
    probe(agent(&cluster, 1)).expect(Status::Success);
    // start of a running slon: nothing changes.
    agent(&cluster, 1).run("start").expect(Status::Success);
    assert_eq!(lock_holder(&cluster, 1).map(|h| h.0), Some(backend));
    assert_eq!(slons_of(&cluster, 1), procs);

    // It replicates: rows inserted on the origin reach node 2 once node 2
    // is served too.
    agent(&cluster, 2).run("start").expect(Status::Success);
    cluster.insert_rows(1, 1..11);
    cluster.wait_rows(2, 1..11, secs(30)).unwrap();
    monitor(agent(&cluster, 2)).expect(Status::Success);

    let stopping = Instant::now();
    agent(&cluster, 1).run("stop").expect(Status::Success);
    let stop_took = stopping.elapsed();
    assert_nothing_left(&cluster, 1);
    agent(&cluster, 1).run("stop").expect(Status::Success);
    probe(agent(&cluster, 1)).expect(Status::NotRunning);
    monitor(agent(&cluster, 1)).expect(Status::NotRunning);

    // The next start needs no cleanup, and serves again.
    agent(&cluster, 1).run("start").expect(Status::Success);
    monitor(agent(&cluster, 1)).expect(Status::Success);
    agent(&cluster, 1).run("stop").expect(Status::Success);
    agent(&cluster, 2).run("stop").expect(Status::Success);
    assert_nothing_left(&cluster, 1);
    assert_nothing_left(&cluster, 2);
    println!(
        "start (serving): {} ms, stop (no process, backend or lock row): {} ms",
        start_took.as_millis(),
        stop_took.as_millis()
    );
}

#[test]
fn a_frozen_slon_is_answered_inside_the_monitor_timeout_and_stopped() {
    let cluster = SlonyCluster::new(2);
    let _notes = notes_of(&cluster);
    agent(&cluster, 1).run("start").expect(Status::Success);
    for p in slons_of(&cluster, 1) {
        kill(Pid::from_raw(p.pid), Signal::SIGSTOP).unwrap();
    }
    let asked = Instant::now();
    let out = monitor(agent(&cluster, 1).timeout_ms(5000)).expect(Status::ErrGeneric);
    assert!(asked.elapsed() < Duration::from_secs(5));
    assert!(
        out.reason().contains("is stopped (SIGSTOP)"),
        "{}",
        out.reason()
    );
    let stopping = Instant::now();
    agent(&cluster, 1)
        .timeout_ms(20_000)
        .run("stop")
        .expect(Status::Success);
    assert!(stopping.elapsed() < Duration::from_secs(20));
    assert_nothing_left(&cluster, 1);
}

/// A watchdog SIGKILLed alone leaves its worker serving the node, ignoring
/// SIGTERM: the monitor calls that a failure, stop kills it.
#[test]
fn an_orphaned_worker_is_a_failure_and_stop_kills_it() {
    let cluster = SlonyCluster::new(2);
    let _notes = notes_of(&cluster);
    agent(&cluster, 1).run("start").expect(Status::Success);
    let procs = slons_of(&cluster, 1);
    let watchdog = procs
        .iter()
        .find(|p| procs.iter().any(|c| c.ppid == p.pid))
        .unwrap();
    kill(Pid::from_raw(watchdog.pid), Signal::SIGKILL).unwrap();
    assert!(tusk_testkit::wait_until(
        Duration::from_secs(5),
        || slons_of(&cluster, 1).len() == 1
    ));
    let out = monitor(agent(&cluster, 1)).expect(Status::ErrGeneric);
    assert!(
        out.reason().contains("run without their watchdog"),
        "{}",
        out.reason()
    );
    probe(agent(&cluster, 1)).expect(Status::ErrGeneric);
    agent(&cluster, 1).run("stop").expect(Status::Success);
    assert_nothing_left(&cluster, 1);
}

/// The pid file lies both ways: it names a live process of the postgres
/// user that is no slon (after a reboot), or it is gone while slon runs (a
/// second slon given the same file removed it).
#[test]
fn pid_files_that_lie_are_not_believed() {
    let cluster = SlonyCluster::new(2);
    let _notes = notes_of(&cluster);
    let pid_file = cluster.root().join("agent-1.pid");
    let sleep = postgres_sleeper();
    std::fs::write(&pid_file, format!("{}\n", sleep.0.id())).unwrap();
    probe(agent(&cluster, 1)).expect(Status::NotRunning);
    agent(&cluster, 1).run("stop").expect(Status::Success);
    let mut sleep = sleep;
    assert!(
        sleep.is_alive(),
        "stop never signals what the pid file names"
    );
    agent(&cluster, 1).run("start").expect(Status::Success);
    let watchdog: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();

    std::fs::remove_file(&pid_file).unwrap();
    let out = monitor(agent(&cluster, 1)).expect(Status::Success);
    assert!(
        out.stderr.contains("wrote slon's watchdog PID"),
        "{}",
        out.stderr
    );
    assert_eq!(
        std::fs::read_to_string(&pid_file).unwrap(),
        format!("{watchdog}\n"),
        "the monitor wrote the watchdog's PID back"
    );
    std::fs::remove_file(&pid_file).unwrap();
    agent(&cluster, 1).run("stop").expect(Status::Success);
    assert_nothing_left(&cluster, 1);
}

/// A killed worker is replaced by the watchdog 10 s later: meanwhile the
/// monitor says degraded (slon runs and will serve again by itself), then
/// success again, without any action.
#[test]
fn a_worker_restart_is_degraded_until_the_new_worker_serves() {
    let cluster = SlonyCluster::new(2);
    let _notes = notes_of(&cluster);
    agent(&cluster, 1).run("start").expect(Status::Success);
    let procs = slons_of(&cluster, 1);
    let worker = procs
        .iter()
        .find(|p| procs.iter().any(|w| w.pid == p.ppid))
        .unwrap();
    kill(Pid::from_raw(worker.pid), Signal::SIGKILL).unwrap();
    assert!(tusk_testkit::wait_until(
        Duration::from_secs(5),
        || slons_of(&cluster, 1).len() == 1
    ));
    let out = monitor(agent(&cluster, 1)).expect(Status::Degraded);
    assert!(
        out.stderr.contains("waiting to start a new worker"),
        "{}",
        out.stderr
    );
    let back = Instant::now();
    assert!(
        tusk_testkit::wait_until(Duration::from_secs(30), || {
            monitor(agent(&cluster, 1)).status() == Some(Status::Success)
        }),
        "the new worker serves"
    );
    println!(
        "serving again {} ms after the first degraded monitor",
        back.elapsed().as_millis()
    );
    agent(&cluster, 1).run("stop").expect(Status::Success);
    assert_nothing_left(&cluster, 1);
}

/// A restart notification (RESTART NODE, as FAILOVER and DROP NODE send)
/// puts the watchdog in its 20 s restart delay, during which slon 2.2.11
/// loses one SIGTERM: stop still ends everything inside its timeout.
#[test]
fn stop_during_the_restart_delay_needs_the_second_sigterm() {
    let cluster = SlonyCluster::new(2);
    let _notes = notes_of(&cluster);
    agent(&cluster, 1).run("start").expect(Status::Success);
    cluster
        .slonik("restart node 1;\n", secs(30))
        .expect_success();
    assert!(tusk_testkit::wait_until(
        Duration::from_secs(10),
        || slons_of(&cluster, 1).len() == 1
    ));
    let stopping = Instant::now();
    let out = agent(&cluster, 1)
        .timeout_ms(30_000)
        .run("stop")
        .expect(Status::Success);
    let took = stopping.elapsed();
    assert!(took < Duration::from_secs(30));
    assert_nothing_left(&cluster, 1);
    println!(
        "stop in the restart delay: {} ms\n{}",
        took.as_millis(),
        out.stderr
    );
}

/// The subscriber's lag: degraded while the origin's slon is down (no new
/// events), success again once it runs.
#[test]
fn a_subscriber_behind_its_origin_is_degraded() {
    let cluster = SlonyCluster::new(2);
    let _notes = notes_of(&cluster);
    let subscriber = || agent(&cluster, 2).param("lag_time", "3");
    agent(&cluster, 1).run("start").expect(Status::Success);
    subscriber().run("start").expect(Status::Success);
    cluster.insert_rows(1, 1..4);
    cluster.wait_rows(2, 1..4, secs(30)).unwrap();
    monitor(subscriber()).expect(Status::Success);
    monitor(agent(&cluster, 1)).expect(Status::Success);

    agent(&cluster, 1).run("stop").expect(Status::Success);
    std::thread::sleep(Duration::from_secs(4));
    let out = monitor(subscriber()).expect(Status::Degraded);
    assert!(
        out.stderr
            .contains("node 2 is behind: set 1 (origin node 1): the newest event"),
        "{}",
        out.stderr
    );
    // Logged when it starts, not at every monitor.
    let again = monitor(subscriber()).expect(Status::Degraded);
    assert!(!again.stderr.contains("is behind"), "{}", again.stderr);

    agent(&cluster, 1).run("start").expect(Status::Success);
    assert!(tusk_testkit::wait_until(Duration::from_secs(30), || {
        monitor(subscriber()).status() == Some(Status::Success)
    }));
    agent(&cluster, 1).run("stop").expect(Status::Success);
    subscriber().run("stop").expect(Status::Success);
}

/// slon reads its -f file before its operands: the parameters win over the
/// file's cluster_name and conn_info, and the file's other settings apply.
#[test]
fn the_config_file_sets_what_the_parameters_do_not() {
    let cluster = SlonyCluster::new(2);
    let _notes = notes_of(&cluster);
    let conf = cluster.root().join("slon.conf");
    std::fs::write(
        &conf,
        "cluster_name='other'\nconn_info='dbname=nonexistent'\nsync_interval=700\n",
    )
    .unwrap();
    let a = || {
        agent(&cluster, 1)
            .param("config_file", &conf)
            .param("options", "")
    };
    a().run("validate-all").expect(Status::Success);
    a().run("start").expect(Status::Success);
    monitor(a()).expect(Status::Success);
    let log = std::fs::read_to_string(cluster.root().join("agent-1.log")).unwrap();
    assert!(log.contains("Integer option sync_interval = 700"), "{log}");
    a().run("stop").expect(Status::Success);
    assert_nothing_left(&cluster, 1);
}

/// slon's worker closes its connection and exits after a restart
/// notification (FAILOVER, DROP NODE): for a moment it still runs while the
/// node's lock row names a backend that is gone. A monitor in that moment
/// waits for the worker to exit and reports the watchdog's wait for a new
/// one (before: a failure, "does not serve node", once the worker was older
/// than 10 s; seen in the Slony demo). A worker that stays, with a row that
/// is not its, is still a failure inside the monitor's timeout.
#[test]
fn a_worker_that_exits_after_losing_its_connection_is_no_failure() {
    let cluster = SlonyCluster::new(2);
    let _notes = notes_of(&cluster);
    agent(&cluster, 1).run("start").expect(Status::Success);
    let worker = || {
        let procs = slons_of(&cluster, 1);
        procs
            .iter()
            .find(|p| procs.iter().any(|w| w.pid == p.ppid))
            .cloned()
            .expect("a worker")
    };
    let first = worker();
    // Older than the monitor's patience for a worker still connecting.
    std::thread::sleep(Duration::from_millis(10_500));
    let gone = {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        child.wait().unwrap();
        pid
    };
    plant_lock(&cluster, 1, gone);
    let exiting = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(1));
        kill(Pid::from_raw(first.pid), Signal::SIGKILL).unwrap();
    });
    let out = monitor(agent(&cluster, 1).timeout_ms(20_000)).expect(Status::Degraded);
    exiting.join().unwrap();
    assert!(
        out.stderr.contains("waiting to start a new worker"),
        "{}",
        out.stderr
    );
    assert!(
        tusk_testkit::wait_until(Duration::from_secs(40), || {
            monitor(agent(&cluster, 1)).status() == Some(Status::Success)
        }),
        "the new worker serves"
    );

    // The new worker, old enough, runs on while the row is not its.
    std::thread::sleep(Duration::from_millis(10_500));
    plant_lock(&cluster, 1, gone);
    let started = Instant::now();
    let out = monitor(agent(&cluster, 1).timeout_ms(6_000)).expect(Status::ErrGeneric);
    assert!(
        out.reason().contains("does not serve node 1"),
        "{}",
        out.reason()
    );
    assert!(started.elapsed() < Duration::from_secs(6));
    agent(&cluster, 1).run("stop").expect(Status::Success);
    assert_nothing_left(&cluster, 1);
}
