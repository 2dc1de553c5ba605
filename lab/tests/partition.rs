//! Partition and heal. What really happens, with stonith-enabled=true as in
//! production: node1 and node2 keep quorum, see node3 lost, and fence it
//! (reboot, through the lab's power switch, which does not need the cut
//! network). node3 boots again with its cable still out, alone and without
//! quorum, so it fences nobody. After the heal it rejoins, and nobody is
//! fenced a second time.

mod common;

use std::time::{Duration, Instant};

use common::{holder, up, wait};

#[test]
fn a_partitioned_node_is_fenced_by_the_majority_and_rejoins_after_heal() {
    let test = up("partition", 3);
    let lab = &test.lab;
    let before = holder(lab, "node3");

    lab.partition("node3").unwrap();
    let cut = Instant::now();

    let lost = wait(
        "node1 to see node3 offline",
        Duration::from_secs(30),
        || lab.view("node1").is_ok_and(|v| !v.is_online("node3")),
    );
    for observer in ["node1", "node2"] {
        let view = lab.view(observer).unwrap();
        assert!(view.has_quorum(), "{observer} lost quorum: {view:?}");
        assert!(
            view.is_online("node1") && view.is_online("node2"),
            "{view:?}"
        );
    }

    // Fenced: the majority rebooted node3, which is on again with a new init.
    wait(
        "the majority to fence node3",
        Duration::from_secs(60),
        || {
            lab.fence_history("node1", "node3")
                .is_ok_and(|h| h.iter().any(|e| e.target == "node3" && e.succeeded()))
        },
    );
    let fenced = cut.elapsed();
    let after = holder(lab, "node3");
    assert_ne!(after.init, before.init, "node3 was not rebooted");

    // Cut off still: alone, no quorum, and node1/node2 are not online for it.
    wait(
        "node3 to run alone without quorum",
        Duration::from_secs(60),
        || {
            lab.view("node3")
                .is_ok_and(|v| v.dc() == Some("node3") && !v.has_quorum())
        },
    );
    let alone = lab.view("node3").unwrap();
    assert!(
        !alone.is_online("node1") && !alone.is_online("node2"),
        "{alone:?}"
    );
    assert!(!lab.view("node1").unwrap().is_online("node3"));
    let node3 = lab.address("node3").unwrap();
    assert_ne!(
        common::probe_from_switch(lab, node3),
        std::io::ErrorKind::ConnectionRefused,
        "node3 answers while cut off"
    );
    eprintln!(
        "[partition] FIGURE node3 cut off: node1 saw it offline after {:.1} s, fenced (rebooted) {:.1} s after the cut",
        lost.as_secs_f64(),
        fenced.as_secs_f64()
    );

    lab.heal("node3").unwrap();
    let healed = Instant::now();
    lab.wait_converged(Duration::from_secs(60))
        .expect("node3 back online after heal");
    eprintln!(
        "[partition] FIGURE after heal, all 3 nodes online with quorum in {:.1} s",
        healed.elapsed().as_secs_f64()
    );
    assert_eq!(
        common::probe_from_switch(lab, node3),
        std::io::ErrorKind::ConnectionRefused,
        "node3 unreachable after heal"
    );

    // The rejoin fenced nobody: one fencing of node3 in total, none of the others.
    std::thread::sleep(Duration::from_secs(3));
    lab.wait_converged(Duration::from_secs(10))
        .expect("still converged");
    let events = lab.fence_history("node1", "*").unwrap();
    assert_eq!(
        events.len(),
        1,
        "expected exactly the one fencing of node3: {events:?}"
    );
    assert_eq!(
        lab.state().unwrap().node("node3").unwrap().holder.as_ref(),
        Some(&after),
        "node3 was rebooted again"
    );
}
