//! Issue 8, item 2: a candidate at every moment. Three nodes,
//! sync=available (and strict), fencing switches nodes off (a lost node stays off). The
//! primary's monitor is made rare (every 300 s) so that the fault lands,
//! deterministically, in the window this scenario is about: both standbys
//! are restarted (`pcs resource restart pg-clone NODE`: each clears its own
//! promotion score as it stops and starts, and only the primary's next
//! monitor would score it again), stream again and acknowledge the
//! writer's commits, and then the primary's node loses power before that
//! monitor.
//!
//! Before: no node held a promotion score, so Pacemaker promoted nobody,
//! and nothing ever gave one: the cluster stayed without a primary until a
//! person acted. Now the standbys' monitors, seeing no primary anywhere and
//! no score, publish their positions and the furthest one gives itself a
//! score; it is promoted without a human, and no acknowledged write is lost.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tusk_lab::postgres::{self, SyncMode};

#[test]
fn a_primary_lost_before_it_scored_the_restarted_standbys_is_failed_over() {
    scenario("pg-no-candidate", SyncMode::Available);
}

/// Under strict too: both standbys compared, the old primary the only node
/// that is not, the furthest standby holds every acknowledged commit.
#[test]
fn under_strict_too() {
    scenario("pg-no-candidate-strict", SyncMode::Strict);
}

fn scenario(name: &str, sync: SyncMode) {
    let (test, old) = up_promotable(name, 3, |c| c.sync(sync));
    let lab = &test.lab;
    fence_by_switching_off(lab);
    let standbys: Vec<String> = lab
        .nodes()
        .unwrap()
        .into_iter()
        .filter(|n| *n != old)
        .collect();
    let writer = start_writer(lab);

    // The primary's monitor: once now (Pacemaker runs a new recurring
    // operation at once), then not for 300 s.
    let observer = standbys[0].clone();
    let monitor = |action: &str, interval: &str| {
        sh(
            lab,
            &observer,
            &[
                "pcs",
                "resource",
                "op",
                action,
                postgres::RESOURCE,
                "monitor",
                interval,
                "role=Promoted",
                "timeout=20s",
            ],
        );
    };
    monitor("remove", "interval=10s");
    monitor("add", "interval=300s");
    let rare = Instant::now();

    for standby in &standbys {
        sh(
            lab,
            &observer,
            &[
                "pcs",
                "resource",
                "restart",
                postgres::CLONE,
                standby,
                "--wait=120",
            ],
        );
    }
    postgres::wait_replicating(lab, 2, Duration::from_secs(60))
        .expect("both restarted standbys streaming again");
    let restarted = Instant::now();
    wait_writes_after(&writer, restarted, 20, Duration::from_secs(30));
    let view = lab.view(&observer).unwrap();
    let scores: Vec<(String, Option<String>)> = standbys
        .iter()
        .map(|s| {
            (
                s.clone(),
                view.attribute(s, postgres::ATTR_PROMOTION)
                    .map(str::to_string),
            )
        })
        .collect();
    eprintln!(
        "[{name}] standbys restarted {:.1} s after the primary's last monitor; their scores: {scores:?}",
        (restarted - rare).as_secs_f64()
    );
    assert!(
        scores.iter().all(|(_, s)| s.is_none()),
        "the window did not open: {scores:?}"
    );
    assert!(
        rare.elapsed() < Duration::from_secs(240),
        "too slow: the primary's next monitor is near"
    );

    lab.crash(&old).unwrap();
    let fault = Instant::now();
    eprintln!(
        "[{name}] {old} lost power with {} writes acknowledged",
        writer.report().acknowledged.len()
    );
    let new = wait_new_primary(lab, &old, Duration::from_secs(90));
    wait_writes_after(&writer, fault, 5, Duration::from_secs(60));
    figure(
        name,
        "power loss of the primary's node",
        fault,
        &writer.report(),
    );
    for line in log_lines(lab, "promotion score anywhere") {
        eprintln!("[{name}] {line}");
    }
    let report = writer.stop();
    assert_nothing_lost(lab, &report);
    assert_eq!(assert_one_primary_nothing_blocked(lab), new);
}
