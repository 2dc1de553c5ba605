//! Issue 10, lab scenario 2: the origin's node loses power. Pacemaker
//! fences it (switched off: stonith-action=off, so it stays off until the
//! test boots it) and promotes the best subscriber, whose promote finds the
//! old origin unreachable and its node fenced and runs FAILOVER (then DROP
//! NODE of the old origin). The client writing through the floating
//! address writes on the new origin. Then the old node is booted: its
//! PostgreSQL comes back with a catalog that still names it the origin;
//! the agent's start sees the other nodes say otherwise, saves its rows
//! (pg_dump), drops its schema, stores it again and subscribes it, all by
//! itself. Finally a planned move makes it the origin again. No
//! acknowledged row is lost: each is on the final origin, or, for the rows
//! the old origin acknowledged in the last moments before it lost power
//! and no subscriber had received yet (Slony replicates asynchronously),
//! in the dump the agent saved before rejoining it. One origin, every
//! subscriber replicating.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tusk_lab::slony;

const NAME: &str = "slon-failover";

#[test]
fn a_crashed_origin_is_failed_over_rejoins_by_itself_and_is_moved_back() {
    let (test, old) = up_slony(NAME, 3);
    let lab = &test.lab;
    fence_by_switching_off(lab);
    let writer = start_origin_writer(lab);
    let before = slony::failback_dumps(lab, &old);

    lab.crash(&old).unwrap();
    let crash = Instant::now();
    eprintln!(
        "[{NAME}] {old} lost power with {} writes acknowledged",
        writer.report().acknowledged.len()
    );
    let new = wait_origin_where(lab, "a new origin", Duration::from_secs(120), |p| p != old);
    eprintln!(
        "[{NAME}] {new} promoted, seen {:.1} s after the crash",
        crash.elapsed().as_secs_f64()
    );
    wait_writes_after(&writer, crash, 5, Duration::from_secs(60));
    let report = writer.report();
    figure(NAME, "crash of the origin's node", crash, &report);
    let fenced = lab.fence_history(&new, &old).unwrap();
    assert!(
        !fenced.is_empty(),
        "{old} was not fenced before the FAILOVER"
    );
    let failovers = log_lines(lab, "FAILOVER of node");
    assert!(
        !failovers.is_empty(),
        "no FAILOVER logged by the new origin's promote"
    );
    assert_eq!(assert_one_origin(lab), new);
    wait_subscribers_replicating_but(lab, &new, &old, &report);

    // The old node comes back: the agent rejoins it by itself.
    let booted = Instant::now();
    lab.restart(&old).unwrap();
    let mut seen = String::new();
    let online = booted.elapsed();
    wait(
        &format!("{old} subscribed again"),
        Duration::from_secs(120),
        || {
            let origin = slony::set_origin(lab, &old).ok().flatten();
            let subs = slony::subscriptions(lab, &old).unwrap_or_default();
            seen = format!("{old}: set_origin {origin:?}, sl_subscribe {subs:?}");
            origin == Some(slony::node_id(&new).unwrap())
                && slony::subscription_active(lab, &old).unwrap_or(false)
        },
    );
    eprintln!(
        "[{NAME}] FIGURE {old} powered on to subscribed again: {:.1} s (online with quorum after {:.1} s; {seen})",
        booted.elapsed().as_secs_f64(),
        online.as_secs_f64()
    );
    let dumps: Vec<_> = slony::failback_dumps(lab, &old)
        .into_iter()
        .filter(|d| !before.contains(d))
        .collect();
    assert_eq!(
        dumps.len(),
        1,
        "the agent saved {old}'s rows once before subscribing it: {dumps:?}"
    );
    eprintln!("[{NAME}] {old}'s rows saved to {}", dumps[0].display());

    // And back, by a planned move, once it has every acknowledged row.
    let report = writer.report();
    wait_subscribers_replicating(lab, &new, &report, Duration::from_secs(60));
    let moved = Instant::now();
    sh(
        lab,
        &new,
        &["pcs", "resource", "move", slony::CLONE, &old, "--promoted"],
    );
    wait_origin_where(
        lab,
        &format!("{old} the origin again"),
        Duration::from_secs(90),
        |p| p == old,
    );
    wait_writes_after(&writer, moved, 5, Duration::from_secs(60));
    let report = writer.stop();
    if let Some((a, b)) = report.longest_pause_after(moved) {
        eprintln!(
            "[{NAME}] FIGURE planned move back {new} -> {old}: writes blocked {:.2} s",
            (b - a).as_secs_f64()
        );
    }
    print_failures(NAME, crash, &report);
    print_slon_agent_lines(NAME, lab);
    let only_saved = assert_nothing_lost_but_saved(lab, &report, &old);
    eprintln!(
        "[{NAME}] FIGURE acknowledged writes that no subscriber had received when {old} lost power (in its failback dump only): {} {only_saved:?}",
        only_saved.len()
    );
    assert_eq!(assert_one_origin(lab), old);
    wait_subscribers_replicating(lab, &old, &report, Duration::from_secs(60));
    assert_no_slon_failure(NAME, lab);
    eprintln!(
        "[{NAME}] {} writes acknowledged, none lost",
        report.acknowledged.len()
    );
}

/// [`wait_subscribers_replicating`] without the node that is down.
fn wait_subscribers_replicating_but(
    lab: &tusk_lab::Lab,
    origin: &str,
    down: &str,
    report: &tusk_lab::harness::workload::WriterReport,
) {
    let (last, _) = *report.acknowledged.last().unwrap();
    for node in lab
        .nodes()
        .unwrap()
        .iter()
        .filter(|n| *n != origin && *n != down)
    {
        wait(
            &format!("{node} replicating from {origin}"),
            Duration::from_secs(60),
            || {
                slony::subscription_active(lab, node).unwrap_or(false)
                    && slony::has_value(lab, node, last).unwrap_or(false)
            },
        );
    }
}
