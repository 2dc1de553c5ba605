//! The scenario harness end to end: the postgresql agent runs as a clone on
//! every node, a writer records acknowledged commits to node1 while pgbench
//! loads it, node1 loses power, is fenced and boots again, Pacemaker starts
//! its instance again, and the outage a client saw is measured. What this
//! proves is the harness: faults, waits, the writer's record and its check.
//! Without replication the rows are read back from the same node, whose
//! page cache survives a lab power loss, so "nothing lost" is weak here; the
//! replication scenarios make it strong. Needs the tusk-agents package
//! installed (the nodes use the host's /usr/lib/ocf), as ./run-tests system does.

mod common;

use std::time::{Duration, Instant};

use common::{up, wait, wait_writes_after};
use tusk_lab::harness::workload::{written_values, Load, Writer};
use tusk_lab::postgres;

#[test]
fn a_power_loss_loses_no_acknowledged_write_and_the_outage_is_measured() {
    let test = up("workload", 3);
    let lab = &test.lab;
    postgres::initdb_all(lab).expect("initdb on every node");
    postgres::create_clone(lab, Duration::from_secs(120)).expect("pg clone started");

    let netns = lab.switch_netns().unwrap();
    let target = postgres::conninfo(lab, "node1").unwrap();
    let writer = Writer::start(&netns, &target, Duration::from_millis(100)).unwrap();
    let host = lab.address("node1").unwrap().to_string();
    let _load = Load::start(
        &netns,
        &["-h", &host, "-U", "postgres", "postgres"],
        4,
        Duration::from_secs(180),
    )
    .expect("pgbench");
    wait("10 acknowledged writes", Duration::from_secs(30), || {
        writer.report().acknowledged.len() >= 10
    });

    lab.crash("node1").unwrap();
    let fault = Instant::now();
    eprintln!(
        "[workload] node1 crashed with {} writes acknowledged",
        writer.report().acknowledged.len()
    );
    // Fencing (stonith-action=reboot) powers node1 on again; Pacemaker then
    // starts its instance, and the writer gets through again.
    wait(
        "a write acknowledged after the crash",
        Duration::from_secs(120),
        || writer.report().first_ack_after(fault).is_some(),
    );
    wait_writes_after(&writer, fault, 5, Duration::from_secs(30));
    let report = writer.stop();
    let outage = report.first_ack_after(fault).unwrap() - fault;
    eprintln!(
        "[workload] FIGURE power loss of node1 to the first acknowledged write: {:.1} s ({} acknowledged, {} failed attempts)",
        outage.as_secs_f64(),
        report.acknowledged.len(),
        report.failures.len()
    );

    let present = written_values(&netns, &target).expect("reading tusk_writer on node1");
    let lost = report.lost(&present);
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");
    assert!(
        !report.failures.is_empty(),
        "the crash should have interrupted the writer"
    );
}
