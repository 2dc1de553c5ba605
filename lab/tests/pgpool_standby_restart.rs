//! Issue 9, lab scenario 2: one standby's PostgreSQL is restarted
//! (`pcs resource restart pg-clone NODE`: Pacemaker stops that instance
//! and starts it again, as an operator would for maintenance). pgpool's
//! health check detaches it when it stops; pgpool-II 4.3 never takes it
//! back by itself; the agent's monitor attaches it once it streams from
//! the primary again, within one monitor interval, on every node, without
//! restarting pgpool. A client writes through another node's pgpool
//! throughout.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tusk_lab::pgpool::{self, Watcher};
use tusk_lab::postgres;

const NAME: &str = "pgpool-standby-restart";

#[test]
fn a_restarted_standby_is_attached_again_within_one_monitor_after_it_streams() {
    let (test, primary) = up_pgpool(NAME, 3, |p| p);
    let lab = &test.lab;
    let nodes = lab.nodes().unwrap();
    let standbys: Vec<String> = nodes.iter().filter(|n| **n != primary).cloned().collect();
    let (standby, client_node) = (standbys[0].clone(), standbys[1].clone());
    let pids = pool_pids(lab, &nodes);
    let watchers: Vec<(String, Watcher)> = nodes
        .iter()
        .map(|n| (n.clone(), Watcher::start(lab, n).unwrap()))
        .collect();
    let writer = start_pool_writer(lab, &client_node);
    let observer = postgres::observer(lab).unwrap();
    let old_postmaster = postgres::postmaster_pid(lab, &standby).unwrap();

    let fault = Instant::now();
    sh(
        lab,
        &observer,
        &[
            "pcs",
            "resource",
            "restart",
            postgres::CLONE,
            &standby,
            "--wait=120",
        ],
    );
    eprintln!(
        "[{NAME}] pcs resource restart of {standby}'s instance returned after {:.1} s",
        fault.elapsed().as_secs_f64()
    );
    assert_ne!(
        postgres::postmaster_pid(lab, &standby).unwrap(),
        old_postmaster,
        "{standby}'s PostgreSQL was not restarted"
    );
    postgres::wait_replicating(lab, 2, Duration::from_secs(60))
        .expect("the restarted standby streaming again");
    let streaming = Instant::now();
    eprintln!(
        "[{NAME}] {standby} streams again {:.1} s after the restart began",
        (streaming - fault).as_secs_f64()
    );
    let bound = pgpool::MONITOR_INTERVAL + Duration::from_secs(5);
    for node in &nodes {
        let left = (streaming + bound).saturating_duration_since(Instant::now());
        wait_pool_attached(lab, node, &standby, true, left);
        eprintln!(
            "[{NAME}] FIGURE {standby} streaming to {node}'s pgpool showing it attached: {:.1} s",
            streaming.elapsed().as_secs_f64()
        );
    }
    std::thread::sleep(Duration::from_secs(1));
    let report = writer.stop();
    eprintln!(
        "[{NAME}] FIGURE restart of a standby, writing through pgpool: {} writes acknowledged, {} unconfirmed, {} failed",
        report.acknowledged.len(),
        report.unconfirmed.len(),
        report.failures.len()
    );
    pause_figure(NAME, "restart of a standby", fault, &report);
    print_failures(NAME, fault, &report);
    print_timelines(NAME, fault, &watchers);
    print_pool_logs(NAME, lab);

    // Each pgpool saw the standby go (its health check detached it) and
    // come back: the attach was needed, and made.
    let addr = lab.address(&standby).unwrap();
    for (node, w) in &watchers {
        let seen = w.seen();
        assert!(
            seen.iter().any(|s| s.at > fault
                && s.view
                    .as_ref()
                    .is_some_and(|v| v.node(addr).is_some_and(|n| n.status == "down"))),
            "{node}'s pgpool never showed {standby} detached: {:?}",
            w.timeline(fault)
        );
    }
    assert_never_two_primaries(&watchers, fault);
    drop(watchers);
    assert_nothing_lost(lab, &report);
    assert_eq!(assert_one_primary_nothing_blocked(lab), primary);
    assert_pools_not_restarted(lab, &pids);
}
