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
