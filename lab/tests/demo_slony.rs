//! The README's Slony demo, run as a user runs it: `tusk-lab demo slony`
//! (what `./demo slony` runs) brings up three nodes with the Slony layout
//! and a client writing through the origin's address; `demo slony move`
//! moves the origin (MOVE SET), `demo slony failover` cuts the origin's
//! power (FAILOVER; the old origin switched on again rejoins by itself),
//! `demo slony move --to OLD` moves it back. Asserted on outcomes and on
//! the figures the demo prints, each recounted here from the client's
//! record and the databases: one origin for Pacemaker and every node's
//! catalog, the address with it, every other node subscribed and holding
//! the last acknowledged write, a first write acknowledged by the new
//! origin (its Slony node id), 0 writes lost on a planned move; after the
//! failover, the number of lost writes the demo prints is the number
//! missing from the new origin (Slony is asynchronous: no setting promises
//! 0), and each of them is in the failback dump the agent saved on the old
//! origin. Needs the tusk-agents package installed, or TUSK_LAB_AGENTS.

mod common;

use std::time::Duration;

use common::*;
use tusk_lab::harness::workload::written_values;
use tusk_lab::{demo, slony, Lab};

/// The number of lost writes the demo printed (`acknowledged writes
/// lost:  K of N...`).
fn printed_lost(output: &str) -> usize {
    let lost = printed_figure(output, "acknowledged writes lost");
    lost.split_whitespace()
        .next()
        .and_then(|k| k.parse().ok())
        .unwrap_or_else(|| panic!("no count of lost writes: {lost}"))
}

/// What every Slony fault must end with; returns the origin and the
/// acknowledged writes this fault lost (missing from the origin, but for
/// those `earlier` faults lost).
fn assert_settled(lab: &Lab, old: &str, output: &str, earlier: &[i64]) -> (String, Vec<i64>) {
    assert!(output.contains("Settled after"), "{output}");
    let origin = assert_one_origin(lab);
    assert_ne!(origin, old, "the origin did not move:\n{output}");
    // The client's record first: each value in it was committed before the
    // table is read.
    let report = demo::client::report(lab).unwrap();
    let present =
        written_values(&lab.switch_netns().unwrap(), &slony::origin_conninfo(lab)).unwrap();
    let lost: Vec<i64> = report
        .lost(&present)
        .into_iter()
        .filter(|n| !earlier.contains(n))
        .collect();
    assert_eq!(
        printed_lost(output),
        lost.len(),
        "the demo's count of lost writes is not what the origin's table says: {lost:?}\n{output}"
    );
    let first = printed_figure(
        output,
        &format!("first write acknowledged by the new origin {origin}"),
    );
    let id = slony::node_id(&origin).unwrap();
    assert!(
        first.contains(" s after ") && first.contains(&format!("(Slony node {id})")),
        "no first write on the new origin: {first}"
    );
    assert!(demo::client::is_running(lab), "the client stopped writing");
    // Every other node subscribed again and replicating: the last write
    // the client had acknowledged reaches each.
    let report = demo::client::report(lab).unwrap();
    wait_subscribers_replicating(lab, &origin, &report, Duration::from_secs(60));
    (origin, lost)
}

#[test]
fn the_slony_demo_moves_fails_over_and_moves_back() {
    require_root();
    let _turn = tusk_lab::wait_turn().unwrap();
    let dir = test_dir("demo-slony");
    tusk_lab::down(&dir).unwrap();
    let _down = tusk_lab::DownOnDrop::new(&dir);
    let started = std::time::Instant::now();

    let up = run_demo(&dir, &["slony"]);
    assert!(up.contains("What runs where:"), "{up}");
    assert!(
        up.contains("slon origin (its catalog: the set's origin)"),
        "{up}"
    );
    assert_eq!(
        up.matches("slon subscriber (its catalog: origin node1, subscription active)")
            .count(),
        2,
        "{up}"
    );
    assert!(up.contains("sudo ./demo slony failover"), "{up}");
    let lab = Lab::attach(&dir).unwrap();
    let first = assert_one_origin(&lab);
    assert!(
        demo::client::is_running(&lab),
        "no client after `demo slony`"
    );

    let moved = run_demo(&dir, &["slony", "move"]);
    let (second, lost) = assert_settled(&lab, &first, &moved, &[]);
    assert!(lost.is_empty(), "a planned move lost writes: {lost:?}");
    assert!(
        moved.contains(&format!("slon on {second} is promoted")),
        "{moved}"
    );
    assert!(
        log_lines(&lab, "FAILOVER of node").is_empty(),
        "a planned move ran FAILOVER"
    );

    let dumps_before = slony::failback_dumps(&lab, &second);
    let failed_over = run_demo(&dir, &["slony", "failover"]);
    let (third, lost) = assert_settled(&lab, &second, &failed_over, &[]);
    assert!(
        failed_over.contains(&format!("{second} is fenced")),
        "{failed_over}"
    );
    assert!(
        !log_lines(&lab, "FAILOVER of node").is_empty(),
        "no FAILOVER logged by the new origin's promote"
    );
    // The old origin rejoined by itself: subscribed again (asserted above)
    // after its agent saved its rows once.
    let dumps: Vec<_> = slony::failback_dumps(&lab, &second)
        .into_iter()
        .filter(|d| !dumps_before.contains(d))
        .collect();
    assert_eq!(dumps.len(), 1, "one failback dump on {second}: {dumps:?}");
    let saved = slony::dumped_values(&dumps[0]).unwrap();
    let unsaved: Vec<i64> = lost
        .iter()
        .copied()
        .filter(|n| !saved.contains(n))
        .collect();
    assert!(
        unsaved.is_empty(),
        "acknowledged writes neither on {third} nor in {second}'s failback dump: {unsaved:?}"
    );
    assert!(
        failed_over.contains(&format!(
            "Saved: {} of the {} lost writes are in the failback dump on {second}",
            lost.len(),
            lost.len()
        )),
        "{failed_over}"
    );
    eprintln!(
        "[demo-slony] FIGURE failover: {} acknowledged writes not on {third}, all in {second}'s failback dump: {lost:?}",
        lost.len()
    );

    // And back, by a planned move.
    let back = run_demo(&dir, &["slony", "move", "--to", &second]);
    let (fourth, lost_back) = assert_settled(&lab, &third, &back, &lost);
    assert_eq!(fourth, second, "moved back to {second}");
    assert!(
        lost_back.is_empty(),
        "the move back lost writes: {lost_back:?}"
    );
    // Printed, not asserted: the slon scenarios (slon_move, slon_failover)
    // assert the agent's own record. Seen once here in 2 runs: node3's
    // subscriber monitor failed (exit 1, "its lock row is not its: PID ...
    // is no backend") in the move back, right after its slon restarted its
    // worker following the FAILOVER; Pacemaker restarted it and the demo
    // settled. What this test checks is what the demo says.
    print_failures_of("demo-slony", &lab);

    let status = run_demo(&dir, &["slony", "status"]);
    assert!(status.contains("client (running)"), "{status}");
    assert!(
        status.contains(&format!(
            "{fourth:<6} online, PostgreSQL running, slon origin"
        )),
        "{status}"
    );

    let client = lab.state().unwrap().client.unwrap();
    run_demo(&dir, &["down"]);
    assert!(!dir.exists(), "demo down left {}", dir.display());
    assert!(!client.is_running(), "demo down left the client running");
    eprintln!(
        "[demo-slony] FIGURE the Slony demo test, up to down: {:.0} s",
        started.elapsed().as_secs_f64()
    );
}
