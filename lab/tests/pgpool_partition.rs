//! Issue 9, lab scenario 3 (DESIGN.md failure 5): the primary's node, which
//! runs a pgpool like every node, is cut off. The majority fences it
//! (reboot: it boots still cut off, alone without quorum, and starts
//! nothing) and promotes a standby; the other pgpools follow and a client
//! writing through one of them writes again. After the heal the old node
//! rejoins: its PostgreSQL streams from the new primary, its pgpool starts
//! again (over a pgpool_status on its disk from before the failover), and
//! the cluster ends with one pgpool serving per node, every pgpool in step
//! with the new primary, nothing blocked and no failed stop.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tusk_lab::pgpool::{self, Watcher};
use tusk_lab::postgres;

const NAME: &str = "pgpool-partition";

#[test]
fn after_a_partition_heals_one_pgpool_serves_per_node_in_step_with_the_new_primary() {
    let (test, old) = up_pgpool(NAME, 3, |p| p);
    let lab = &test.lab;
    let nodes = lab.nodes().unwrap();
    let survivors: Vec<String> = nodes.iter().filter(|n| **n != old).cloned().collect();
    let client_node = survivors.last().unwrap().clone();
    let pids = pool_pids(lab, &survivors);
    let watchers: Vec<(String, Watcher)> = survivors
        .iter()
        .map(|n| (n.clone(), Watcher::start(lab, n).unwrap()))
        .collect();
    let writer = start_pool_writer(lab, &client_node);

    lab.partition(&old).unwrap();
    let fault = Instant::now();
    eprintln!(
        "[{NAME}] {old} cut off with {} writes acknowledged through {client_node}'s pgpool",
        writer.report().acknowledged.len()
    );
    let new = wait_new_primary(lab, &old, Duration::from_secs(120));
    let promoted = Instant::now();
    eprintln!(
        "[{NAME}] {new} promoted, seen {:.1} s after the cut",
        (promoted - fault).as_secs_f64()
    );
    let bound = pgpool::MONITOR_INTERVAL + Duration::from_secs(5);
    for node in &survivors {
        let left = (promoted + bound).saturating_duration_since(Instant::now());
        wait_pool_primary(lab, node, &new, left);
        eprintln!(
            "[{NAME}] FIGURE {new}'s promotion seen to {node}'s pgpool showing it as primary: {:.1} s",
            promoted.elapsed().as_secs_f64()
        );
    }
    wait_writes_after(&writer, fault, 5, Duration::from_secs(60));
    figure(
        NAME,
        "partition of the primary's node, writing through pgpool,",
        fault,
        &writer.report(),
    );

    wait(
        "the majority to fence the old primary's node",
        Duration::from_secs(60),
        || {
            lab.fence_history(&new, &old)
                .is_ok_and(|h| h.iter().any(|e| e.succeeded()))
        },
    );
    wait(
        "the old primary's node up again, alone without quorum",
        Duration::from_secs(60),
        || {
            lab.view(&old)
                .is_ok_and(|v| v.dc() == Some(old.as_str()) && !v.has_quorum())
        },
    );
    // Alone without quorum, it starts nothing: no second pgpool serves a
    // stale view on the old node meanwhile.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        pgpool::main_processes(lab, &old).unwrap(),
        Vec::<i32>::new(),
        "pgpool runs on {old}, cut off without quorum"
    );

    lab.heal(&old).unwrap();
    let healed = Instant::now();
    lab.wait_converged(Duration::from_secs(60)).unwrap();
    let primary = postgres::wait_replicating(lab, 2, Duration::from_secs(120))
        .expect("the old primary streaming after the heal");
    assert_eq!(primary, new, "the primary changed after the heal");
    let streaming = Instant::now();
    eprintln!(
        "[{NAME}] {old} streams from {new} {:.1} s after the heal",
        (streaming - healed).as_secs_f64()
    );
    pgpool::wait_started(lab, Duration::from_secs(60)).expect("pgpool on every node");
    for node in &nodes {
        let left = (streaming + bound).saturating_duration_since(Instant::now());
        wait_pool_in_step(lab, node, &new, left.max(Duration::from_secs(1)));
        eprintln!(
            "[{NAME}] FIGURE heal to {node}'s pgpool in step ({new} primary, {old} attached): {:.1} s",
            healed.elapsed().as_secs_f64()
        );
    }
    wait_writes_after(&writer, healed, 5, Duration::from_secs(30));
    let report = writer.stop();
    pause_figure(NAME, "partition of the primary's node", fault, &report);
    print_failures(NAME, fault, &report);
    print_timelines(NAME, fault, &watchers);
    print_pool_logs(NAME, lab);
    assert_never_two_primaries(&watchers, fault);
    // The former primary was never used while it was lost or rejoining:
    // detached from the failover until the heal, and afterwards attached
    // only as a standby (once it streamed: the agent's condition).
    let old_addr = lab.address(&old).unwrap();
    let new_addr = lab.address(&new).unwrap();
    for (node, w) in &watchers {
        for seen in w.seen() {
            let Some(view) = &seen.view else { continue };
            let Some(former) = view.node(old_addr) else {
                continue;
            };
            let while_lost = seen.at > promoted + bound && seen.at < healed;
            assert!(
                !(while_lost && former.is_attached()),
                "{node}'s pgpool had {old} attached while it was cut off: {:?}",
                w.timeline(fault)
            );
            if seen.at > healed && former.is_attached() {
                assert!(
                    former.role == "standby" && view.has_primary(new_addr),
                    "{node}'s pgpool had {old} attached other than as {new}'s standby: {:?}",
                    w.timeline(fault)
                );
            }
        }
    }
    drop(watchers);

    assert_nothing_lost(lab, &report);
    assert_eq!(assert_one_primary_nothing_blocked(lab), new);
    // One pgpool serving per node, each the one Pacemaker started.
    for node in &nodes {
        let running = pgpool::main_processes(lab, node).unwrap();
        assert_eq!(
            running,
            vec![pgpool::main_pid(lab, node).unwrap()],
            "pgpool main processes on {node}"
        );
    }
    let view = lab.view(&new).unwrap();
    let mut started = view.nodes_in_role(pgpool::RESOURCE, "Started");
    started.sort();
    assert_eq!(started, nodes, "pgpool is not started once on every node");
    let failed_stops: Vec<_> = view
        .failures_of(pgpool::RESOURCE)
        .into_iter()
        .filter(|f| f.task == "stop")
        .collect();
    assert!(failed_stops.is_empty(), "failed stops: {failed_stops:?}");
    // The survivors' pgpools followed without a restart.
    assert_eq!(
        pool_pids(lab, &survivors),
        pids,
        "a surviving pgpool was restarted"
    );
}
