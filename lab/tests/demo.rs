//! The README's demo, run as a user runs it: `tusk-lab demo` (what `./demo`
//! runs) brings up three nodes with PostgreSQL as a promotable clone,
//! pgpool as a clone on every node in front of it, and a client writing
//! through pgpool in the background; `demo switchover`, `demo failover`
//! and `demo partition` each move the primary while the client writes.
//! Asserted on outcomes and on the figures the demo prints, not timings:
//! one primary with the floating address, nothing blocked, the old primary
//! streaming again on the new timeline, every pgpool sending writes to the
//! new primary with both standbys attached (asked directly, and as the
//! demo says), a first write acknowledged by the new primary through
//! pgpool, 0 acknowledged writes lost (counted here from the client's
//! record against the primary's table, and as the demo reports it), the
//! client still running; and `demo down` ends the client with the lab.
//! Needs the tusk-agents package installed, as ./run-tests cluster does
//! (or TUSK_LAB_AGENTS).

mod common;

use std::time::Duration;

use common::*;
use tusk_lab::demo;
use tusk_lab::harness::workload::written_values;
use tusk_lab::{pgpool, postgres, process, Lab};

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
    let first = printed_figure(output, "first write acknowledged by the new primary");
    assert!(
        first.contains(" s after ") && first.contains("(timeline "),
        "no first write on the new primary: {first}"
    );
    assert_pgpools_agree(lab, &primary);
    primary
}

/// Every node's pgpool, asked as a client, sends writes to `primary`
/// alone and has every other node attached (the demo settled only once it
/// saw so; asked here again, directly).
fn assert_pgpools_agree(lab: &Lab, primary: &str) {
    let primary_addr = lab.address(primary).unwrap();
    let names = pgpool::names(lab).unwrap();
    for node in lab.nodes().unwrap() {
        let mut last = String::new();
        let agreed = process::wait_for(
            &format!("{node}'s pgpool in step with {primary}"),
            Duration::from_secs(15),
            || {
                let Ok(view) = pgpool::pool_nodes(lab, &node, Duration::from_secs(3)) else {
                    return Ok(false);
                };
                last = view.summary(&names);
                Ok(view.has_primary(primary_addr)
                    && lab
                        .nodes()?
                        .iter()
                        .all(|n| view.is_attached(lab.address(n).unwrap())))
            },
        );
        assert!(agreed.is_ok(), "{node}'s pgpool: {last}");
    }
}

#[test]
fn the_demo_switches_over_fails_over_and_partitions_without_losing_a_write() {
    require_root();
    let _turn = tusk_lab::wait_turn().unwrap();
    let dir = test_dir("demo");
    tusk_lab::down(&dir).unwrap();
    let _down = tusk_lab::DownOnDrop::new(&dir);

    let started = std::time::Instant::now();
    let up = run_demo(&dir, &[]);
    assert!(up.contains("What runs where:"), "{up}");
    assert!(
        up.contains("pgpool-clone (ocf:tusk:pgpool) started"),
        "{up}"
    );
    assert_eq!(
        up.matches("(agrees with Pacemaker)").count(),
        3,
        "every pgpool's view agrees with Pacemaker's: {up}"
    );
    assert!(up.contains("through pgpool (port 9999 of "), "{up}");
    assert!(up.contains("sudo ./demo failover"), "{up}");
    let lab = Lab::attach(&dir).unwrap();
    let first = postgres::wait_replicating(&lab, 2, Duration::from_secs(60)).unwrap();
    assert!(
        up.contains(&format!("{first:<6} online, PostgreSQL primary")),
        "{up}"
    );
    assert!(demo::client::is_running(&lab), "no client after `demo`");
    assert_pgpools_agree(&lab, &first);
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
    assert_eq!(
        status.matches("(agrees with Pacemaker)").count(),
        3,
        "{status}"
    );
    assert!(
        status.contains(&format!("{fourth:<6} online, PostgreSQL primary")),
        "{status}"
    );

    // crm_mon -A, as the operator reads it (docs/attributes.md): each
    // pgpool's summary names the primary by its node name, and pg-sync is
    // the primary's alone (a demoted primary took its own away).
    let observer = postgres::observer(&lab).unwrap();
    // The agents publish at their monitors: within one interval of the
    // demo settling.
    let mut last = String::new();
    let published = process::wait_for(
        "every pgpool-backends naming the primary",
        pgpool::MONITOR_INTERVAL + Duration::from_secs(5),
        || {
            let view = lab.view(&observer)?;
            let values: Vec<Option<String>> = lab
                .nodes()?
                .iter()
                .map(|n| view.attribute(n, pgpool::ATTR_BACKENDS).map(str::to_string))
                .collect();
            last = format!("{values:?}");
            let named = format!("3/3 attached, primary {fourth} (id ");
            Ok(values
                .iter()
                .all(|b| b.as_deref().is_some_and(|b| b.starts_with(&named))))
        },
    );
    assert!(published.is_ok(), "pgpool-backends: {last}");
    let attributes = lab.exec(&observer, &["crm_mon", "-1", "-A"]).unwrap();
    eprintln!(
        "[demo] $ crm_mon -1 -A\n{}",
        String::from_utf8_lossy(&attributes.stdout)
    );
    let view = lab.view(&observer).unwrap();
    for node in lab.nodes().unwrap() {
        let sync = view.attribute(&node, postgres::ATTR_SYNC);
        if node == fourth {
            assert_eq!(sync, Some("sync"), "the primary's pg-sync");
        } else {
            assert_eq!(sync, None, "{node} is a standby, yet has pg-sync");
        }
    }

    run_demo(&dir, &["down"]);
    assert!(!dir.exists(), "demo down left {}", dir.display());
    assert!(!client.is_running(), "demo down left the client running");
    eprintln!(
        "[demo] FIGURE the demo test, up to down: {:.0} s",
        started.elapsed().as_secs_f64()
    );
}
