//! Issue 4, scenario 2: the primary's node loses power. The majority fences
//! it (reboot), promotes the most advanced standby, the floating address
//! follows; no acknowledged write is lost (sync=available). The node boots
//! again and its former primary rejoins as a streaming standby by itself
//! (rewind=auto).

mod common;

use std::time::{Duration, Instant};

use common::*;
use tusk_lab::postgres;

const NAME: &str = "pg-crash";

#[test]
fn a_crashed_primary_node_fails_over_and_rejoins_as_a_standby() {
    let (test, old) = up_promotable(NAME, 3, |c| c);
    let lab = &test.lab;
    let writer = start_writer(lab);
    let _load = start_load(lab);
    std::thread::sleep(Duration::from_secs(2));

    lab.crash(&old).unwrap();
    let fault = Instant::now();
    eprintln!(
        "[{NAME}] {old} lost power with {} writes acknowledged",
        writer.report().acknowledged.len()
    );

    let new = wait_new_primary(lab, &old, Duration::from_secs(120));
    wait_writes_after(&writer, fault, 5, Duration::from_secs(60));
    figure(
        NAME,
        "power loss of the primary's node",
        fault,
        &writer.report(),
    );

    // Fencing rebooted the node; its instance comes back as a standby.
    let primary = postgres::wait_replicating(lab, 2, Duration::from_secs(120))
        .expect("the old primary streaming again");
    eprintln!(
        "[{NAME}] FIGURE power loss to {old} streaming from {new} again: {:.1} s (rewound: {})",
        fault.elapsed().as_secs_f64(),
        postgres::was_rewound(lab, &old)
    );
    assert_eq!(primary, new, "the primary changed again");
    let report = writer.stop();
    assert_nothing_lost(lab, &report);
    assert_eq!(
        postgres::timeline(lab, &old).unwrap(),
        postgres::timeline(lab, &new).unwrap(),
        "the old primary is not on the new primary's timeline"
    );
    assert_one_primary_nothing_blocked(lab);
}
