//! Issue 10, lab scenario 1: a planned move of the Slony set's origin and
//! back, under Pacemaker. `pcs resource move slon-clone NODE --promoted`
//! makes Pacemaker demote the origin's instance (the agent's demote runs
//! LOCK SET, MOVE SET, WAIT FOR EVENT to the node being promoted), promote
//! the target (which finds the set already there) and move the floating
//! address after it. A client writes through the address all along: no
//! acknowledged row is lost, every node's catalog names the Promoted node
//! the origin, every other node replicates from it, nothing failed.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tusk_lab::slony;

const NAME: &str = "slon-move";

#[test]
fn a_planned_move_of_the_origin_and_back_loses_no_row() {
    let (test, first) = up_slony(NAME, 3);
    let lab = &test.lab;
    let writer = start_origin_writer(lab);
    let target = lab
        .nodes()
        .unwrap()
        .into_iter()
        .find(|n| *n != first)
        .unwrap();

    for (from, to) in [
        (first.clone(), target.clone()),
        (target.clone(), first.clone()),
    ] {
        let moved = Instant::now();
        sh(
            lab,
            &from,
            &["pcs", "resource", "move", slony::CLONE, &to, "--promoted"],
        );
        let origin = wait_origin_where(
            lab,
            &format!("{to} the origin"),
            Duration::from_secs(90),
            |p| p == to,
        );
        wait_writes_after(&writer, moved, 5, Duration::from_secs(60));
        let report = writer.report();
        match report.longest_pause_after(moved) {
            Some((a, b)) => eprintln!(
                "[{NAME}] FIGURE planned move {from} -> {to}: writes blocked {:.2} s (no acknowledgement from +{:.2} s to +{:.2} s after pcs resource move; {} failed attempts)",
                (b - a).as_secs_f64(),
                a.saturating_duration_since(moved).as_secs_f64(),
                (b - moved).as_secs_f64(),
                report.failures.iter().filter(|(at, _)| *at > moved).count(),
            ),
            None => eprintln!("[{NAME}] FIGURE planned move {from} -> {to}: no write after it"),
        }
        print_failures(NAME, moved, &report);
        assert_eq!(assert_one_origin(lab), origin);
        let took = wait_subscribers_replicating(lab, &origin, &report, Duration::from_secs(60));
        eprintln!(
            "[{NAME}] every other node replicating from {origin} {:.1} s after the move was seen",
            took.as_secs_f64()
        );
    }
    let report = writer.stop();
    print_slon_agent_lines(NAME, lab);
    assert_nothing_lost_on_origin(lab, &report);
    assert_eq!(assert_one_origin(lab), first);
    wait_subscribers_replicating(lab, &first, &report, Duration::from_secs(60));
    assert_no_slon_failure(NAME, lab);
    // A planned move never fails a node over.
    let failovers = log_lines(lab, "FAILOVER of node");
    assert!(
        failovers.is_empty(),
        "a planned move ran FAILOVER: {failovers:?}"
    );
    eprintln!(
        "[{NAME}] {} writes acknowledged, none lost",
        report.acknowledged.len()
    );
}
