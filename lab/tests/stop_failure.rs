//! A node whose stop fails is fenced, as in production: with
//! stonith-enabled=true, Pacemaker cannot know what is left running there
//! and must power it off before the resource may run anywhere else.

mod common;

use std::time::Duration;

use common::{holder, processes_of, sh, survivors, up, wait};

#[test]
fn a_stop_that_times_out_gets_the_node_fenced() {
    let test = up("stop-failure", 3);
    let lab = &test.lab;
    // Pacemaker's Dummy sleeps op_sleep seconds in every operation: its
    // start and monitor get the time, its stop does not.
    sh(
        lab,
        "node1",
        &[
            "pcs",
            "resource",
            "create",
            "slow",
            "ocf:pacemaker:Dummy",
            "op_sleep=4",
            "op",
            "start",
            "timeout=30s",
            "op",
            "monitor",
            "interval=120s",
            "timeout=30s",
            "op",
            "stop",
            "timeout=1s",
        ],
    );
    sh(
        lab,
        "node1",
        &[
            "pcs",
            "constraint",
            "location",
            "slow",
            "prefers",
            "node3=INFINITY",
        ],
    );
    wait("slow to run on node3", Duration::from_secs(60), || {
        lab.view("node1")
            .is_ok_and(|v| v.nodes_in_role("slow", "Started") == ["node3"])
    });
    let holder = holder(lab, "node3");
    let node3_processes = processes_of(&holder);

    sh(lab, "node1", &["pcs", "resource", "disable", "slow"]);
    let took = wait(
        "node3 to be fenced for the failed stop",
        Duration::from_secs(60),
        || {
            lab.fence_history("node1", "node3")
                .is_ok_and(|h| h.iter().any(|e| e.succeeded()))
        },
    );
    eprintln!(
        "[stop-failure] FIGURE disable to node3 fenced: {:.1} s",
        took.as_secs_f64()
    );
    assert_eq!(
        survivors(&node3_processes),
        Vec::<i32>::new(),
        "node3 kept running"
    );
    lab.wait_converged(Duration::from_secs(120))
        .expect("node3 back online");
}
