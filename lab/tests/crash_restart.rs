//! Crash and restart. Crash is a power loss: every process of node2 dies at
//! once and its address and link go with its network namespace. The cluster
//! fences it; with stonith-action=off (set here, so that fencing does not
//! power it back on by itself) it stays off until `restart` boots it with its
//! disks as they were.

mod common;

use std::time::{Duration, Instant};

use common::{holder, processes_of, sh, survivors, up, wait};

#[test]
fn a_crashed_node_goes_offline_and_restart_brings_it_back_with_its_disks() {
    let test = up("crash-restart", 3);
    let lab = &test.lab;
    sh(
        lab,
        "node1",
        &["pcs", "property", "set", "stonith-action=off"],
    );
    // Something on node2's disk, to find again after the crash.
    sh(
        lab,
        "node2",
        &[
            "sh",
            "-c",
            "echo before-crash > /var/lib/pacemaker/tusk-lab-marker",
        ],
    );
    let before = holder(lab, "node2");
    let node2_processes = processes_of(&before);

    lab.crash("node2").unwrap();
    let crashed = Instant::now();
    assert!(!lab.is_running("node2").unwrap());
    assert_eq!(
        survivors(&node2_processes),
        Vec::<i32>::new(),
        "a process of node2 survived the crash"
    );
    assert!(
        !before.unshare.is_running(),
        "node2's namespaces are still held by unshare"
    );
    assert!(
        lab.command("node2", "true").is_err(),
        "a crashed node runs no command"
    );

    let lost = wait(
        "node1 to see node2 offline",
        Duration::from_secs(30),
        || lab.view("node1").is_ok_and(|v| !v.is_online("node2")),
    );
    wait(
        "the cluster to fence node2 (off)",
        Duration::from_secs(60),
        || {
            lab.fence_history("node1", "node2")
                .is_ok_and(|h| h.iter().any(|e| e.action == "off" && e.succeeded()))
        },
    );
    let fenced = crashed.elapsed();
    // The fencer records success a moment before the controller writes the
    // node's new state into the CIB.
    wait(
        "node3 to see node2 cleanly offline",
        Duration::from_secs(10),
        || {
            lab.view("node3").is_ok_and(|v| {
                v.has_quorum() && v.node("node2").is_some_and(|n| !n.online && !n.unclean)
            })
        },
    );
    assert!(
        !lab.is_running("node2").unwrap(),
        "fencing with action off powered node2 on"
    );

    let started = Instant::now();
    lab.restart("node2").expect("restart node2");
    let back = started.elapsed();
    eprintln!(
        "[crash-restart] FIGURE node2 crashed: seen offline after {:.1} s, fenced (off) after {:.1} s; restart to online with quorum: {:.1} s",
        lost.as_secs_f64(),
        fenced.as_secs_f64(),
        back.as_secs_f64()
    );
    assert_eq!(
        sh(lab, "node2", &["cat", "/var/lib/pacemaker/tusk-lab-marker"]).trim(),
        "before-crash"
    );
    assert_eq!(sh(lab, "node2", &["hostname"]).trim(), "node2");
    let view = lab.view("node2").unwrap();
    assert!(
        view.has_quorum() && view.is_online("node1") && view.is_online("node3"),
        "{view:?}"
    );

    // restart of a running node changes nothing.
    let running = lab.state().unwrap().node("node2").unwrap().holder.clone();
    lab.restart("node2").unwrap();
    assert_eq!(lab.state().unwrap().node("node2").unwrap().holder, running);
}
