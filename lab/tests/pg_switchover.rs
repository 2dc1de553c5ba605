//! Issue 4, scenario 4 (DESIGN.md failure 4): planned switchover with
//! `pcs resource move pg-clone NODE --promoted` and back again. The old
//! primary is demoted (stopped cleanly, shutdown checkpoint written), the
//! target is promoted only after it replayed that checkpoint, and the old
//! primary follows the new timeline without pg_rewind. No acknowledged
//! write is lost, no operation fails.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tusk_lab::postgres;

const NAME: &str = "pg-switchover";

#[test]
fn a_planned_switchover_and_back_needs_no_rewind_and_loses_nothing() {
    let (test, first) = up_promotable(NAME, 3, |c| c);
    let lab = &test.lab;
    let writer = start_writer(lab);
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
        // pcs 0.11: the move's constraint is removed again once the clone
        // is promoted on `to`, and pcs fails when Pacemaker would then move
        // it back (promotion scores that still favour `from`).
        sh(
            lab,
            &from,
            &[
                "pcs",
                "resource",
                "move",
                postgres::CLONE,
                &to,
                "--promoted",
            ],
        );
        let primary = postgres::wait_replicating(lab, 2, Duration::from_secs(120))
            .unwrap_or_else(|e| panic!("switchover {from} -> {to}: {e:#}"));
        assert_eq!(primary, to, "switchover {from} -> {to} promoted {primary}");
        wait_writes_after(&writer, moved, 5, Duration::from_secs(60));
        let report = writer.report();
        match report.outage_after(moved) {
            Some((failed, resumed)) => eprintln!(
                "[{NAME}] FIGURE switchover {from} -> {to}: move to the first acknowledged write on {to} {:.1} s, writes failing for {:.1} s",
                (resumed - moved).as_secs_f64(),
                (resumed - failed).as_secs_f64()
            ),
            None => eprintln!("[{NAME}] FIGURE switchover {from} -> {to}: no write failed"),
        }
        assert_eq!(
            postgres::timeline(lab, &from).unwrap(),
            postgres::timeline(lab, &to).unwrap(),
            "{from} does not follow {to}'s timeline"
        );
    }
    let report = writer.stop();
    assert_nothing_lost(lab, &report);
    assert_eq!(assert_one_primary_nothing_blocked(lab), first);

    let rewound: Vec<String> = lab
        .nodes()
        .unwrap()
        .into_iter()
        .filter(|n| postgres::was_rewound(lab, n))
        .collect();
    let mentions = log_lines(lab, "pg_rewind");
    assert!(
        rewound.is_empty(),
        "pg_rewind ran on {rewound:?} during a planned switchover; the agent logged: {mentions:#?}"
    );
    eprintln!("[{NAME}] log lines naming pg_rewind: {mentions:#?}");
    let view = lab.view(&first).unwrap();
    let failures = view.failures_of(postgres::RESOURCE);
    assert!(failures.is_empty(), "failed operations: {failures:?}");
}
