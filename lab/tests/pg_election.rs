//! Issue 4, scenario 8: three nodes, one standby deliberately behind, then
//! the primary's postmaster is killed: the most advanced standby must be
//! promoted. "Behind" is what the election compares: received WAL. The
//! lagging standby's walreceiver is frozen (SIGSTOP), so it stops receiving
//! while the other standby (the synchronous one, sync=available with
//! `ANY 1`) keeps up with the writer. Pausing replay would not do: a paused
//! standby still has, and replays at promotion, everything it received.
//! The lagging one is the first standby by name, the one Pacemaker tends
//! to pick when promotion scores tie.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tusk_lab::postgres;

const NAME: &str = "pg-election";

#[test]
fn the_most_advanced_standby_is_promoted() {
    let (test, old) = up_promotable(NAME, 3, |c| c);
    let lab = &test.lab;
    let standbys: Vec<String> = lab
        .nodes()
        .unwrap()
        .into_iter()
        .filter(|n| *n != old)
        .collect();
    let (behind, ahead) = (standbys[0].clone(), standbys[1].clone());
    let writer = start_writer(lab);

    let receiver = postgres::sql(lab, &behind, "SELECT pid FROM pg_stat_wal_receiver").unwrap();
    let receiver = receiver.trim().to_string();
    assert!(!receiver.is_empty(), "{behind} has no walreceiver");
    sh(lab, &behind, &["kill", "-STOP", &receiver]);
    let frozen = Instant::now();
    wait_writes_after(&writer, frozen, 20, Duration::from_secs(30));
    let (lsn_behind, lsn_ahead) = (
        postgres::received_lsn(lab, &behind).unwrap(),
        postgres::received_lsn(lab, &ahead).unwrap(),
    );
    eprintln!("[{NAME}] received WAL: {behind} {lsn_behind}, {ahead} {lsn_ahead}");
    assert!(lsn_behind < lsn_ahead, "{behind} is not behind {ahead}");

    kill_postmaster(lab, &old);
    let fault = Instant::now();
    let new = wait_new_primary(lab, &old, Duration::from_secs(120));
    wait_writes_after(&writer, fault, 5, Duration::from_secs(60));
    figure(
        NAME,
        "kill -9 of the primary's postmaster",
        fault,
        &writer.report(),
    );
    assert_eq!(new, ahead, "the lagging standby was promoted");

    // The lagging one may go on: it follows the new primary.
    // Unless the agent restarted that instance meanwhile (a stop has to
    // kill a frozen walreceiver: it cannot act on SIGTERM).
    let thawed = lab
        .exec(&behind, &["kill", "-CONT", &receiver])
        .is_ok_and(|o| o.status.success());
    eprintln!("[{NAME}] {behind}'s frozen walreceiver was still there: {thawed}");
    let resumed = Instant::now();
    postgres::wait_replicating(lab, 1, Duration::from_secs(60)).unwrap();
    let following = wait_following(lab, &new, &behind, Duration::from_secs(60));
    eprintln!(
        "[{NAME}] FIGURE lagging standby resumed to streaming from {new}: {:.1} s ({following})",
        resumed.elapsed().as_secs_f64()
    );
    let report = writer.stop();
    assert_nothing_lost(lab, &report);
    assert_eq!(assert_one_primary_nothing_blocked(lab), new);
}

/// Waits until `standby` streams from `primary`; says how it looked.
fn wait_following(lab: &tusk_lab::Lab, primary: &str, standby: &str, timeout: Duration) -> String {
    let mut seen = String::new();
    wait(
        &format!("{standby} streaming from {primary}"),
        timeout,
        || {
            let Ok(replicas) = postgres::replication(lab, primary) else {
                return false;
            };
            seen = format!("{replicas:?}");
            replicas
                .iter()
                .any(|r| r.name == standby && r.state == "streaming")
        },
    );
    seen
}
