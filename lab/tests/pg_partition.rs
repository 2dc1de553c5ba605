//! Issue 4, scenario 3 (DESIGN.md failure 5): the primary's node is cut
//! off for longer than the failure timeouts. The majority fences it
//! (reboot; it boots still cut off, alone, without quorum) and promotes a
//! standby. After the heal the cluster ends with exactly one primary,
//! nothing blocked, no manual step, and the old primary streaming as a
//! standby on the new timeline.
//!
//! And (issue 8, item 7) what the cut-off primary acknowledges to a client
//! on its own side (its unix socket) is on the promoted node: under
//! sync=available its commits wait for a standby it cannot reach until it
//! is fenced, well before wal_sender_timeout (60 s) would let it fall back.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tusk_lab::postgres;

const NAME: &str = "pg-partition";

#[test]
fn after_a_partition_heals_there_is_one_primary_and_the_old_one_rejoins() {
    let (test, old) = up_promotable(NAME, 3, |c| c);
    let lab = &test.lab;
    let writer = start_writer(lab);
    postgres::sql(lab, &old, "CREATE TABLE tusk_local (v int)").unwrap();
    let local = local_writer(lab, &old);
    wait(
        "a local write acknowledged",
        Duration::from_secs(30),
        || !local.acknowledged().is_empty(),
    );

    lab.partition(&old).unwrap();
    let fault = Instant::now();
    let before_cut = local.acknowledged().len();
    eprintln!(
        "[{NAME}] {old} cut off with {} writes acknowledged",
        writer.report().acknowledged.len()
    );
    let new = wait_new_primary(lab, &old, Duration::from_secs(120));
    wait_writes_after(&writer, fault, 5, Duration::from_secs(60));
    figure(NAME, "partition of the primary", fault, &writer.report());

    // Longer than the failure timeouts: the old primary's node was fenced,
    // and it is up again alone, without quorum.
    wait(
        "the majority to fence the old primary",
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
    let roles_alone = postgres::roles_in(&lab.view(&old).unwrap());
    eprintln!("[{NAME}] {old} alone sees {roles_alone:?}");

    lab.heal(&old).unwrap();
    let healed = Instant::now();
    lab.wait_converged(Duration::from_secs(60)).unwrap();
    let primary = postgres::wait_replicating(lab, 2, Duration::from_secs(120))
        .expect("the old primary streaming after the heal");
    eprintln!(
        "[{NAME}] FIGURE heal to {old} streaming from {new}: {:.1} s (rewound: {})",
        healed.elapsed().as_secs_f64(),
        postgres::was_rewound(lab, &old)
    );
    assert_eq!(primary, new, "the primary changed after the heal");
    wait_writes_after(&writer, healed, 5, Duration::from_secs(30));
    let report = writer.stop();
    assert_nothing_lost(lab, &report);
    let acknowledged = local.stop();
    eprintln!(
        "[{NAME}] FIGURE local writes on the cut-off primary acknowledged after the cut: {} \
         (before it: {before_cut})",
        acknowledged.len().saturating_sub(before_cut)
    );
    let lost = LocalWriter::lost_on(&acknowledged, lab, &new);
    assert!(
        lost.is_empty(),
        "local writes acknowledged by {old} and lost: {lost:?}"
    );
    assert_eq!(assert_one_primary_nothing_blocked(lab), new);
    assert_eq!(
        postgres::timeline(lab, &old).unwrap(),
        postgres::timeline(lab, &new).unwrap(),
        "the old primary is not on the new primary's timeline"
    );
}
