//! Issue 10, lab scenario 3: the origin's PostgreSQL is killed (SIGKILL of
//! the postmaster), its node alive. What follows is up to Pacemaker and
//! the agents: the postgresql clone's monitor sees its server gone and
//! restarts it in place (stopping the node's slon first, which is ordered
//! after it); slon's demote cannot reach its database. Either the origin
//! comes back in place, or the set is failed over to a subscriber (the old
//! origin's PostgreSQL is known stopped: nothing listens there) and the
//! node rejoins by itself once its PostgreSQL runs again. The scenario
//! prints which happened and asserts what must hold either way: no
//! acknowledged row lost (on the final origin, or saved in the failback
//! dump after a FAILOVER), exactly one origin, every subscriber
//! replicating, nothing blocked.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tusk_lab::slony;

const NAME: &str = "slon-pg-kill";

#[test]
fn a_killed_origin_postgresql_leaves_one_origin_and_no_lost_row() {
    let (test, old) = up_slony(NAME, 3);
    let lab = &test.lab;
    let writer = start_origin_writer(lab);
    std::thread::sleep(Duration::from_secs(2));

    kill_postmaster(lab, &old);
    let fault = Instant::now();
    eprintln!(
        "[{NAME}] killed the postmaster on {old} with {} writes acknowledged",
        writer.report().acknowledged.len()
    );
    wait_writes_after(&writer, fault, 5, Duration::from_secs(150));
    let report = writer.report();
    figure(NAME, "kill -9 of the origin's postmaster", fault, &report);
    if let Some((a, b)) = report.longest_pause_after(fault) {
        eprintln!(
            "[{NAME}] FIGURE kill -9 of the origin's postmaster: writes blocked {:.1} s",
            (b - a).as_secs_f64()
        );
    }
    let origin = wait_origin_where(lab, "one origin", Duration::from_secs(60), |_| true);
    let failed_over = origin != old;
    eprintln!(
        "[{NAME}] {}: {origin} is the origin {:.1} s after the kill",
        if failed_over {
            "failed over"
        } else {
            "recovered in place"
        },
        fault.elapsed().as_secs_f64()
    );
    // Every node runs slon again, the killed one included (rejoined by
    // itself after a FAILOVER), and replicates from the origin.
    let mut last = String::new();
    wait(
        "slon running on every node",
        Duration::from_secs(120),
        || {
            let Ok(r) = slony::roles(lab) else {
                return false;
            };
            last = format!("{r:?}");
            r.promoted.len() == 1 && r.unpromoted.len() == 2
        },
    );
    let report = writer.stop();
    wait_subscribers_replicating(lab, &origin, &report, Duration::from_secs(90));
    print_failures(NAME, fault, &report);
    print_slon_agent_lines(NAME, lab);
    print_failures_of(NAME, lab);
    if failed_over {
        let only_saved = assert_nothing_lost_but_saved(lab, &report, &old);
        eprintln!(
            "[{NAME}] FIGURE acknowledged writes no subscriber had received when {old}'s PostgreSQL was killed (in its failback dump only): {} {only_saved:?}",
            only_saved.len()
        );
    } else {
        assert_nothing_lost_on_origin(lab, &report);
    }
    assert_eq!(assert_one_origin(lab), origin);
    // PostgreSQL's monitor failed (it was killed); slon's only said
    // degraded while its database was down.
    assert_no_slon_failure(NAME, lab);
    eprintln!(
        "[{NAME}] {} writes acknowledged, none lost",
        report.acknowledged.len()
    );
}
