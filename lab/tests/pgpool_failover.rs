//! Issue 9, lab scenario 1: a PostgreSQL failover under pgpool. The
//! primary's postmaster is killed (kill -9); Pacemaker promotes a standby
//! (issue 4's `pg_kill`); pgpool, run by ocf:tusk:pgpool as a clone on
//! every node, follows without being restarted, and a client writing
//! through one node's pgpool writes again without losing an acknowledged
//! write.
//!
//! Two sizings of pgpool's primary search (`search_primary_node_timeout`):
//! the one the agent advises, longer than Pacemaker takes to promote, with
//! which pgpool finds the new primary by itself; and one too short, with
//! which pgpool gives up searching before the promotion and only the
//! agent's monitor makes it follow (`pcp_promote_node`, then the standbys
//! attached again). Either way every pgpool shows the new primary within
//! one monitor interval of the promotion.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tusk_lab::pgpool::{self, Pool, Watcher};
use tusk_lab::postgres;

fn failover(name: &str, configure: impl FnOnce(Pool) -> Pool) {
    let (test, old) = up_pgpool(name, 3, configure);
    let lab = &test.lab;
    let survivors: Vec<String> = lab
        .nodes()
        .unwrap()
        .into_iter()
        .filter(|n| *n != old)
        .collect();
    // The client's pgpool is on a node whose PostgreSQL is not faulted.
    let client_node = survivors.last().unwrap().clone();
    let pids = pool_pids(lab, &lab.nodes().unwrap());
    let watchers: Vec<(String, Watcher)> = survivors
        .iter()
        .map(|n| (n.clone(), Watcher::start(lab, n).unwrap()))
        .collect();
    let writer = start_pool_writer(lab, &client_node);
    std::thread::sleep(Duration::from_secs(2));

    kill_postmaster(lab, &old);
    let fault = Instant::now();
    eprintln!(
        "[{name}] killed the postmaster on {old} with {} writes acknowledged through {client_node}'s pgpool",
        writer.report().acknowledged.len()
    );

    let new = wait_new_primary(lab, &old, Duration::from_secs(120));
    let promoted = Instant::now();
    eprintln!(
        "[{name}] {new} promoted, seen {:.1} s after the kill",
        (promoted - fault).as_secs_f64()
    );
    // Within one monitor interval of the promotion (plus the monitor's own
    // run and the poll), every surviving pgpool sends writes to it.
    let bound = pgpool::MONITOR_INTERVAL + Duration::from_secs(5);
    for node in &survivors {
        let left = (promoted + bound).saturating_duration_since(Instant::now());
        wait_pool_primary(lab, node, &new, left);
        eprintln!(
            "[{name}] FIGURE {new}'s promotion seen to {node}'s pgpool showing it as primary: {:.1} s",
            promoted.elapsed().as_secs_f64()
        );
    }
    wait_writes_after(&writer, fault, 5, Duration::from_secs(60));
    let report = writer.stop();
    figure(
        name,
        "kill -9 of the primary's postmaster, writing through pgpool,",
        fault,
        &report,
    );
    pause_figure(name, "kill -9 of the primary's postmaster", fault, &report);
    print_failures(name, fault, &report);
    print_timelines(name, fault, &watchers);
    print_pool_logs(name, lab);
    assert_never_two_primaries(&watchers, fault);
    drop(watchers);

    assert_nothing_lost(lab, &report);
    assert_eq!(assert_one_primary_nothing_blocked(lab), new);
    assert_pools_not_restarted(lab, &pids);
    // Every pgpool, the killed node's too (pgpool is not colocated with
    // PostgreSQL), has the new primary and the standby streaming from it
    // attached: a standby pgpool detached (a promotion in pgpool detaches
    // every other backend) is attached by the agent within a monitor of
    // its streaming. The killed instance stays stopped (migration-threshold=1).
    postgres::wait_replicating(lab, 1, Duration::from_secs(60))
        .expect("the other standby streaming from the new primary");
    let streaming = Instant::now();
    for node in lab.nodes().unwrap() {
        let left = (streaming + bound).saturating_duration_since(Instant::now());
        wait_pool_in_step(lab, &node, &new, left);
    }
}

#[test]
fn pgpool_finds_the_promotion_itself_and_is_never_restarted() {
    failover("pgpool-failover", |p| p);
}

#[test]
fn a_promotion_after_pgpool_s_search_is_followed_by_the_agent_within_one_monitor() {
    failover("pgpool-failover-missed", |p| {
        p.search_primary_node_timeout(2)
    });
}
