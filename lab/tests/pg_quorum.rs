//! Issue 8, item 12: a primary without quorum acknowledges no commit.
//!
//! The primary's node is cut off and nothing ends its primary for a while:
//! `no-quorum-policy=freeze` (Pacemaker leaves the cut-off side's resources
//! running) and a fence device that cannot reach it (the majority cannot
//! fence it, so it promotes nobody either). Its walsenders time out (3 s
//! here), its monitor finds no standby streaming and would let commits go
//! asynchronous: a client on its own node would then get acknowledgements
//! for commits that only this primary holds, which the majority's next
//! primary lacks. With the quorum check the commits keep waiting. Then the
//! fence device is given the node back: the majority fences it and promotes
//! a standby, and after the heal every commit the client saw acknowledged
//! is on the new primary.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tusk_lab::{postgres, FENCE_DEVICE};

const NAME: &str = "pg-quorum";

#[test]
fn a_primary_cut_off_from_the_majority_acknowledges_no_commit() {
    let (test, old) = up_promotable(NAME, 3, |c| c);
    let lab = &test.lab;
    let nodes = lab.nodes().unwrap();
    let others: Vec<&str> = nodes
        .iter()
        .map(String::as_str)
        .filter(|n| *n != old)
        .collect();
    let observer = others[0];
    postgres::sql(lab, &old, "ALTER SYSTEM SET wal_sender_timeout = '3s'").unwrap();
    postgres::sql(lab, &old, "SELECT pg_reload_conf()").unwrap();
    sh(
        lab,
        observer,
        &["pcs", "property", "set", "no-quorum-policy=freeze"],
    );
    let fence_hosts = |hosts: &[&str]| {
        sh(
            lab,
            observer,
            &[
                "pcs",
                "stonith",
                "update",
                FENCE_DEVICE,
                &format!("pcmk_host_list={}", hosts.join(" ")),
            ],
        );
    };
    fence_hosts(&others);
    postgres::sql(lab, &old, "CREATE TABLE tusk_local (v int)").unwrap();
    let local = local_writer(lab, &old);
    wait(
        "a local write acknowledged",
        Duration::from_secs(30),
        || !local.acknowledged().is_empty(),
    );

    lab.partition(&old).unwrap();
    let cut = Instant::now();
    // Past the commit in flight at the cut: from here on, a commit is
    // acknowledged only if the primary lets commits go asynchronous.
    std::thread::sleep(Duration::from_secs(2));
    let settled = local.acknowledged().len();
    wait(
        &format!("{old} alone without quorum"),
        Duration::from_secs(30),
        || lab.view(&old).is_ok_and(|v| !v.has_quorum()),
    );
    // wal_sender_timeout, then at least two monitors (every 10 s).
    std::thread::sleep(Duration::from_secs(30));
    let while_cut = local.acknowledged().len() - settled;
    let monitor_said = sh(lab, &old, &["crm_mon", "-1", "--output-as=text"]);
    eprintln!(
        "[{NAME}] FIGURE local commits acknowledged by the cut-off primary {:.0} s after the \
         cut, past the one in flight: {while_cut}",
        cut.elapsed().as_secs_f64()
    );
    assert_eq!(
        while_cut, 0,
        "{old} acknowledged commits without quorum; it saw:\n{monitor_said}"
    );

    // The majority may fence it now, and promotes a standby.
    fence_hosts(&nodes.iter().map(String::as_str).collect::<Vec<_>>());
    let new = wait_new_primary(lab, &old, Duration::from_secs(120));
    wait(
        "the majority to fence the old primary",
        Duration::from_secs(60),
        || {
            lab.fence_history(&new, &old)
                .is_ok_and(|h| h.iter().any(|e| e.succeeded()))
        },
    );
    lab.heal(&old).unwrap();
    lab.wait_converged(Duration::from_secs(60)).unwrap();
    let primary = postgres::wait_replicating(lab, 2, Duration::from_secs(120))
        .expect("the old primary streaming after the heal");
    assert_eq!(primary, new, "the primary changed after the heal");
    let acknowledged = local.stop();
    let lost = LocalWriter::lost_on(&acknowledged, lab, &new);
    assert!(
        lost.is_empty(),
        "local writes acknowledged by {old} and lost: {lost:?}"
    );
    assert_eq!(assert_one_primary_nothing_blocked(lab), new);
}
