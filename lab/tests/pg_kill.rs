//! Issue 4, scenario 1: kill -9 of the primary's postmaster. The agent's
//! monitor reports the primary failed, its stop succeeds on the crashed
//! instance (so Pacemaker needs no fencing), the most advanced standby is
//! promoted, the floating address follows, and no write the writer saw
//! acknowledged (sync=available: on a standby before it was acknowledged)
//! is missing on the new primary.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tusk_lab::postgres;

const NAME: &str = "pg-kill";

#[test]
fn a_killed_primary_postmaster_fails_over_without_losing_an_acknowledged_write() {
    let (test, old) = up_promotable(NAME, 3, |c| c);
    let lab = &test.lab;
    let writer = start_writer(lab);
    let _load = start_load(lab);
    std::thread::sleep(Duration::from_secs(2));

    kill_postmaster(lab, &old);
    let fault = Instant::now();
    eprintln!(
        "[{NAME}] killed the postmaster on {old} with {} writes acknowledged",
        writer.report().acknowledged.len()
    );

    let new = wait_new_primary(lab, &old, Duration::from_secs(120));
    wait_writes_after(&writer, fault, 5, Duration::from_secs(60));
    let report = writer.stop();
    figure(NAME, "kill -9 of the primary's postmaster", fault, &report);

    assert_nothing_lost(lab, &report);
    assert_eq!(assert_one_primary_nothing_blocked(lab), new);
    // The stop of the crashed instance succeeded: nobody was fenced.
    let fenced = lab.fence_history(&new, &old).unwrap();
    assert!(
        fenced.iter().all(|e| !e.succeeded()),
        "{old} was fenced after its postmaster was killed: {fenced:?}"
    );
    let view = lab.view(&new).unwrap();
    let stop_failures: Vec<_> = view
        .failures_of(postgres::RESOURCE)
        .into_iter()
        .filter(|f| f.task == "stop")
        .collect();
    assert!(stop_failures.is_empty(), "failed stops: {stop_failures:?}");
}
