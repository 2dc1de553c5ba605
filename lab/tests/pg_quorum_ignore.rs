//! Issue 8, item 12, as the field report ran it: `no-quorum-policy=ignore`
//! and fencing off. The primary's node is cut off: Pacemaker there keeps
//! the primary and its floating address, the majority promotes a standby
//! with the address too, and after the heal the address is briefly active
//! on two nodes until Pacemaker demotes one primary. Under `sync=off` the
//! cut-off primary has no standby to wait for: whatever it acknowledges
//! while cut off is rewound away when it rejoins.
//!
//! With the agent's quorum check the cut-off primary's monitor notices the
//! loss of quorum (corosync's quorum API) and holds every commit
//! (`synchronous_standby_names` naming no node): no commit is acknowledged
//! there once that monitor ran. What it acknowledged before (at most one
//! monitor interval, 10 s here, after corosync noticed the partition) is
//! the stated window, counted apart. Clients write through the floating
//! address the whole time (from the switch); one more writes on the
//! primary's own node through its unix socket, which the cut does not
//! reach. On main's agent the local client's writes are acknowledged for
//! as long as the node is cut off, and lost.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tusk_lab::postgres::{self, SyncMode};

const NAME: &str = "pg-quorum-ignore";

/// What the agent sets while its partition has no quorum (see the agent's
/// `election::NO_QUORUM_NAME`).
const HOLD: &str = "no quorum";

#[test]
fn a_cut_off_primary_under_no_quorum_policy_ignore_acknowledges_nothing_once_it_noticed() {
    let (test, old) = up_promotable(NAME, 3, |c| c.sync(SyncMode::Off));
    let lab = &test.lab;
    let nodes = lab.nodes().unwrap();
    let observer = nodes.iter().find(|n| **n != old).unwrap().clone();
    sh(
        lab,
        &observer,
        &["pcs", "property", "set", "no-quorum-policy=ignore"],
    );
    sh(
        lab,
        &observer,
        &["pcs", "property", "set", "stonith-enabled=false"],
    );
    // Replication connections notice the cut within 5 s (60 s by default):
    // a standby's connection to the old primary would otherwise outlive a
    // short cut and carry on after the heal, the standby never following
    // the new primary.
    for node in &nodes {
        let setting = if *node == old {
            "wal_sender_timeout"
        } else {
            "wal_receiver_timeout"
        };
        postgres::sql(lab, node, &format!("ALTER SYSTEM SET {setting} = '5s'")).unwrap();
        postgres::sql(lab, node, "SELECT pg_reload_conf()").unwrap();
    }
    postgres::sql(lab, &old, "CREATE TABLE tusk_local (v int)").unwrap();
    let writer = start_writer(lab);
    let local = local_writer(lab, &old);
    wait(
        "a local write acknowledged",
        Duration::from_secs(30),
        || !local.acknowledged().is_empty(),
    );

    lab.partition(&old).unwrap();
    let cut = Instant::now();
    let before_cut = local.acknowledged().len();
    // Until the cut-off primary holds its commits: corosync's token
    // timeout, then at most one monitor interval (10 s).
    let mut held_after = None;
    let _ = tusk_lab::process::wait_for("the hold", Duration::from_secs(40), || {
        let shown = postgres::sql(lab, &old, "SHOW synchronous_standby_names");
        if shown.is_ok_and(|s| s.contains(HOLD)) {
            held_after = Some(cut.elapsed());
            return Ok(true);
        }
        Ok(false)
    });
    // The commit in flight when the setting changed, and the checkpointer
    // applying it (sync_standbys_defined): then nothing more.
    std::thread::sleep(Duration::from_secs(1));
    let at_hold = local.acknowledged().len();
    let new = wait_new_primary(lab, &old, Duration::from_secs(120));
    let promoted_after = cut.elapsed();
    let first_on_new = wait_writes_after(&writer, cut, 5, Duration::from_secs(120));
    // Held for a while longer, cut off.
    std::thread::sleep(Duration::from_secs(15));
    let after_hold = local.acknowledged().len() - at_hold;
    eprintln!(
        "[{NAME}] FIGURE local commits acknowledged by the cut-off primary: {} before it held \
         them ({}), {after_hold} after; {new} promoted {:.1} s after the cut, first write \
         through the address acknowledged {:.1} s after the cut",
        at_hold - before_cut,
        match held_after {
            Some(t) => format!("held {:.1} s after the cut", t.as_secs_f64()),
            None => "never held".to_string(),
        },
        promoted_after.as_secs_f64(),
        first_on_new.as_secs_f64()
    );

    lab.heal(&old).unwrap();
    let healed = Instant::now();
    lab.wait_converged(Duration::from_secs(90)).unwrap();
    // Quorum is back for both sides; the old primary keeps its commits
    // held while the new one runs, until its monitor finds it stale (a
    // newer timeline elsewhere) and Pacemaker demotes it. Pacemaker, seeing
    // two primaries, may also move the role on from the new one.
    let mut last = postgres::Roles::default();
    let one = tusk_lab::process::wait_for("one primary", Duration::from_secs(120), || {
        let Ok(roles) = postgres::roles(lab) else {
            return Ok(false);
        };
        last = roles.clone();
        Ok(roles.promoted.len() == 1 && roles.vip == roles.promoted)
    });
    eprintln!(
        "[{NAME}] FIGURE from the heal to one primary ({:?}): {:.1} s",
        last.promoted,
        healed.elapsed().as_secs_f64()
    );
    for line in log_lines(lab, "postgresql(pg)")
        .iter()
        .filter(|l| !l.contains("pacemaker-"))
        .filter(|l| {
            ["quorum", "stale", "promoted", "demote", "shut down"]
                .iter()
                .any(|w| l.contains(w))
        })
    {
        eprintln!("[{NAME}] {line}");
    }
    one.unwrap_or_else(|e| panic!("{e:#}; last seen: {last:?}"));
    // The stale primary's failed monitor is a failure on its node
    // (migration-threshold=1); with no fencing to clear it, the operator
    // does.
    sh(lab, &observer, &["pcs", "resource", "cleanup", "pg"]);
    let primary = postgres::wait_replicating(lab, 2, Duration::from_secs(180))
        .expect("one primary and both others streaming after the heal");
    eprintln!(
        "[{NAME}] FIGURE from the heal to one primary with two streaming standbys: {:.1} s",
        healed.elapsed().as_secs_f64()
    );
    assert_ne!(primary, old, "the cut-off primary stayed primary");
    // The floating-address client goes on writing after the heal, when the
    // address is briefly on two nodes: everything it saw acknowledged
    // since the cut is on the final primary.
    wait_writes_after(&writer, Instant::now(), 5, Duration::from_secs(60));
    let report = writer.stop();
    let acknowledged = local.stop();
    let present = tusk_lab::harness::workload::written_values(
        &lab.switch_netns().unwrap(),
        &postgres::primary_conninfo(lab),
    )
    .expect("reading tusk_writer on the primary");
    let since_cut: Vec<i64> = report
        .acknowledged
        .iter()
        .filter(|(_, at)| *at > cut)
        .map(|(v, _)| *v)
        .filter(|v| !present.contains(v))
        .collect();
    let lost_local = LocalWriter::lost_on(&acknowledged, lab, &primary);
    eprintln!(
        "[{NAME}] FIGURE lost: {} local commits of the cut-off primary ({} of them \
         acknowledged after it held commits), {} writes through the address acknowledged after \
         the cut; {} through the address before it (sync=off: not yet streamed)",
        lost_local.len(),
        lost_local.iter().filter(|v| **v as usize > at_hold).count(),
        since_cut.len(),
        report.lost(&present).len() - since_cut.len()
    );
    assert!(held_after.is_some(), "{old} never held its commits");
    assert_eq!(
        after_hold, 0,
        "{old} acknowledged commits after it held them for lack of quorum"
    );
    assert!(
        since_cut.is_empty(),
        "writes through the address acknowledged after the cut and lost: {since_cut:?}"
    );
    assert_eq!(assert_one_primary_nothing_blocked(lab), primary);
}

/// The release: every node cut off from every other (nobody has quorum)
/// under `no-quorum-policy=freeze`, so nobody is promoted. The primary
/// holds its commits; once the cables are back its partition has quorum,
/// no other primary runs, and its next monitor releases the hold: the
/// session that waited goes on, and commits are acknowledged again.
#[test]
fn a_primary_held_for_quorum_releases_its_commits_when_quorum_returns() {
    const NAME: &str = "pg-quorum-release";
    let (test, old) = up_promotable(NAME, 3, |c| c.sync(SyncMode::Off));
    let lab = &test.lab;
    let nodes = lab.nodes().unwrap();
    sh(
        lab,
        &old,
        &["pcs", "property", "set", "no-quorum-policy=freeze"],
    );
    sh(
        lab,
        &old,
        &["pcs", "property", "set", "stonith-enabled=false"],
    );
    postgres::sql(lab, &old, "CREATE TABLE tusk_local (v int)").unwrap();
    let local = local_writer(lab, &old);
    wait(
        "a local write acknowledged",
        Duration::from_secs(30),
        || !local.acknowledged().is_empty(),
    );
    for node in &nodes {
        lab.partition(node).unwrap();
    }
    let cut = Instant::now();
    wait("the hold", Duration::from_secs(40), || {
        postgres::sql(lab, &old, "SHOW synchronous_standby_names").is_ok_and(|s| s.contains(HOLD))
    });
    let held_after = cut.elapsed();
    std::thread::sleep(Duration::from_secs(1));
    let at_hold = local.acknowledged().len();
    std::thread::sleep(Duration::from_secs(10));
    let after_hold = local.acknowledged().len() - at_hold;
    for node in &nodes {
        lab.heal(node).unwrap();
    }
    let healed = Instant::now();
    wait(
        "a local write acknowledged after the heal",
        Duration::from_secs(60),
        || local.acknowledged().len() > at_hold + after_hold,
    );
    let released_after = healed.elapsed();
    eprintln!(
        "[{NAME}] FIGURE held {:.1} s after the cut, {after_hold} commits acknowledged while \
         held; the first acknowledged {:.1} s after the heal",
        held_after.as_secs_f64(),
        released_after.as_secs_f64()
    );
    assert_eq!(after_hold, 0, "{old} acknowledged commits while held");
    assert_eq!(
        postgres::sql(lab, &old, "SHOW synchronous_standby_names").unwrap(),
        "",
        "sync=off once quorum is back"
    );
    local.stop();
    lab.wait_converged(Duration::from_secs(60)).unwrap();
    assert_eq!(assert_one_primary_nothing_blocked(lab), old);
}
