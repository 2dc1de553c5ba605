//! The README's demo, run as a user runs it: `tusk-lab demo` (what `./demo`
//! runs) brings up three nodes with PostgreSQL as a promotable clone and a
//! client writing in the background; `demo switchover`, `demo failover`
//! and `demo partition` each move the primary while the client writes. Asserted on outcomes,
//! not timings: one primary with the floating address, nothing blocked,
//! the old primary streaming again on the new timeline, every write the
//! client saw acknowledged present on the new primary, the client still
//! running; and `demo down` ends the client with the lab. Needs the
//! tusk-agents package installed, as ./run-tests cluster does.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use tusk_lab::demo;
use tusk_lab::harness::workload::written_values;
use tusk_lab::{postgres, Lab};

/// Runs `tusk-lab --dir DIR demo ARGS`, prints what it said, and returns
/// its output; panics when it fails.
fn run_demo(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(EXE)
        .arg("--dir")
        .arg(dir)
        .arg("demo")
        .args(args)
        .env("TUSK_DEMO_COMMAND", "./demo")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("[demo] $ demo {}\n{stdout}{stderr}", args.join(" "));
    assert!(
        out.status.success(),
        "demo {args:?} failed ({}):\n{stdout}{stderr}",
        out.status
    );
    stdout
}

/// What every fault must end with; returns the new primary.
fn assert_moved_and_nothing_lost(lab: &Lab, old: &str, output: &str) -> String {
    let primary = assert_one_primary_nothing_blocked(lab);
    assert_ne!(primary, old, "the primary did not move:\n{output}");
    // The old primary is back as a standby, streaming on the new timeline.
    let replicas = postgres::replication(lab, &primary).unwrap();
    assert!(
        replicas
            .iter()
            .any(|r| r.name == old && r.state == "streaming"),
        "{old} does not stream from {primary}: {replicas:?}"
    );
    assert_eq!(
        postgres::timeline(lab, old).unwrap(),
        postgres::timeline(lab, &primary).unwrap(),
        "{old} is not on {primary}'s timeline"
    );
    // The client's own record against the rows the new primary has (the
    // record first: each value in it was committed before the table is read).
    let report = demo::client::report(lab).unwrap();
    let present = written_values(
        &lab.switch_netns().unwrap(),
        &postgres::primary_conninfo(lab),
    )
    .unwrap();
    let lost = report.lost(&present);
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");
    let reported = output
        .lines()
        .find(|l| l.trim_start().starts_with("acknowledged writes lost:"))
        .unwrap_or_else(|| panic!("no figure of lost writes:\n{output}"));
    assert!(
        reported
            .split(':')
            .nth(1)
            .unwrap()
            .trim()
            .starts_with("0 of "),
        "the demo did not report 0 lost: {reported}"
    );
    assert!(output.contains("Settled after"), "{output}");
    assert!(demo::client::is_running(lab), "the client stopped writing");
    primary
}

#[test]
fn the_demo_switches_over_fails_over_and_partitions_without_losing_a_write() {
    require_root();
    let _turn = tusk_lab::wait_turn().unwrap();
    let dir = test_dir("demo");
    tusk_lab::down(&dir).unwrap();
    let _down = tusk_lab::DownOnDrop::new(&dir);

    let up = run_demo(&dir, &[]);
    assert!(up.contains("What runs where:"), "{up}");
    assert!(up.contains("sudo ./demo failover"), "{up}");
    let lab = Lab::attach(&dir).unwrap();
    let first = postgres::wait_replicating(&lab, 2, Duration::from_secs(60)).unwrap();
    assert!(
        up.contains(&format!("{first:<6} online, PostgreSQL primary")),
        "{up}"
    );
    assert!(demo::client::is_running(&lab), "no client after `demo`");
    let client = lab.state().unwrap().client.unwrap();
    // It writes from inside the lab: its writer thread is in the switch's
    // network namespace.
    let switch = std::fs::read_link(lab.switch_netns().unwrap()).unwrap();
    let in_switch = std::fs::read_dir(format!("/proc/{}/task", client.pid))
        .unwrap()
        .filter_map(|t| std::fs::read_link(t.ok()?.path().join("ns/net")).ok())
        .any(|ns| ns == switch);
    assert!(in_switch, "no thread of the client is in the lab's network");

    let switched = run_demo(&dir, &["switchover"]);
    let second = assert_moved_and_nothing_lost(&lab, &first, &switched);
    assert!(
        switched.contains(&format!("PostgreSQL on {second} is promoted")),
        "{switched}"
    );

    let failed_over = run_demo(&dir, &["failover"]);
    let third = assert_moved_and_nothing_lost(&lab, &second, &failed_over);
    assert!(
        failed_over.contains(&format!("{second} is fenced")),
        "{failed_over}"
    );
    assert!(
        failed_over.contains(&format!("PostgreSQL on {third} is promoted")),
        "{failed_over}"
    );
    assert!(
        lab.fence_history(&third, &second)
            .unwrap()
            .iter()
            .any(|e| e.succeeded()),
        "{second} was not fenced"
    );
    let partitioned = run_demo(&dir, &["partition"]);
    let fourth = assert_moved_and_nothing_lost(&lab, &third, &partitioned);
    assert!(
        partitioned.contains(&format!("{third} is fenced")),
        "{partitioned}"
    );
    assert!(
        partitioned.contains(&format!("PostgreSQL on {fourth} is promoted")),
        "{partitioned}"
    );

    let status = run_demo(&dir, &["status"]);
    assert!(status.contains("client (running)"), "{status}");

    run_demo(&dir, &["down"]);
    assert!(!dir.exists(), "demo down left {}", dir.display());
    assert!(!client.is_running(), "demo down left the client running");
}
