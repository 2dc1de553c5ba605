//! Issue 8, item 6: a promotion never proceeds uncompared. Three nodes,
//! sync=available: the first standby ("behind") stops receiving (the
//! primary's walsender to it SIGSTOPped) while the other ("ahead") keeps acknowledging
//! the writer's commits, and Pacemaker is made to pick "behind" (its score
//! above "ahead"'s, as a tie would leave it to chance). Then the primary's
//! postmaster is killed, and "ahead"'s WAL position reaches the cluster
//! late: every `attrd_updater` update of `pg-lsn` on that node fails while
//! the test holds it (a wrapper bind-mounted over the tool inside that
//! node only, as when attrd does not answer), its pre-promote publication
//! included, and the hold ends 10 s after that one failed.
//!
//! Before: "behind"'s promote waited 3 s, logged "published no WAL position
//! at pre-promote: not compared" and promoted itself, losing the commits
//! only "ahead" held. Now it waits inside half of promote's timeout for the
//! position, which "ahead"'s monitor publishes once it can, finds "ahead"
//! further, refuses, and steers the scores so that Pacemaker promotes
//! "ahead".

mod common;

use std::time::{Duration, Instant};

use common::*;
use tusk_lab::postgres;

const NAME: &str = "pg-late-position";

/// Inside a node: fails every `--update` of `pg-lsn` while the hold file
/// exists, logging each refusal with the action it came from.
const WRAPPER: &str = r#"#!/bin/sh
d=/var/lib/postgresql/tusk-test
held=no
if [ -e $d/hold ]; then
  case " $* " in *" pg-lsn "*)
    for a in "$@"; do case "$a" in --update=*) held=yes;; esac; done;;
  esac
fi
if [ $held = yes ]; then
  echo "$(date +%s.%N) ${OCF_RESKEY_CRM_meta_notify_type:-monitor} ${OCF_RESKEY_CRM_meta_notify_operation:-} $*" >> $d/held.log
  echo "Could not update pg-lsn: held by the test" >&2
  exit 1
fi
exec $d/attrd_updater.real "$@"
"#;

#[test]
fn a_candidate_whose_position_comes_late_is_waited_for_and_promoted() {
    let (test, old) = up_promotable(NAME, 3, |c| c);
    let lab = &test.lab;
    let standbys: Vec<String> = lab
        .nodes()
        .unwrap()
        .into_iter()
        .filter(|n| *n != old)
        .collect();
    let (behind, ahead) = (standbys[0].clone(), standbys[1].clone());
    let observer = postgres::observer(lab).unwrap();
    let writer = start_writer(lab);

    // The wrapper, over attrd_updater in "ahead"'s mount namespace only.
    let install = format!(
        "set -e; d=/var/lib/postgresql/tusk-test; mkdir -p $d; \
         cp /usr/sbin/attrd_updater $d/attrd_updater.real; \
         cat > $d/attrd_updater <<'EOF'\n{WRAPPER}EOF\n\
         chmod 755 $d/attrd_updater; mount --bind $d/attrd_updater /usr/sbin/attrd_updater; \
         touch $d/hold"
    );
    sh(lab, &ahead, &["sh", "-c", &install]);

    // The primary's walsender to "behind" frozen, not "behind"'s receiver:
    // a promotion stops the WAL receiver first, and a frozen one would
    // hang it. The frozen walsender outlives the kill of its postmaster,
    // holding the connection silent, until the stop of that instance
    // kills it.
    let walsender = postgres::sql(
        lab,
        &old,
        &format!("SELECT pid FROM pg_stat_replication WHERE application_name = '{behind}'"),
    )
    .unwrap();
    let walsender = walsender.trim().to_string();
    assert!(!walsender.is_empty(), "no walsender for {behind}");
    sh(lab, &old, &["kill", "-STOP", &walsender]);
    let frozen = Instant::now();
    wait_writes_after(&writer, frozen, 20, Duration::from_secs(30));
    let (lsn_behind, lsn_ahead) = (
        postgres::received_lsn(lab, &behind).unwrap(),
        postgres::received_lsn(lab, &ahead).unwrap(),
    );
    eprintln!("[{NAME}] received WAL: {behind} {lsn_behind}, {ahead} {lsn_ahead}");
    assert!(lsn_behind < lsn_ahead, "{behind} is not behind {ahead}");
    // Pacemaker's pick: "behind".
    sh(
        lab,
        &observer,
        &[
            "crm_attribute",
            &format!("--promotion={}", postgres::RESOURCE),
            "--lifetime=reboot",
            "--node",
            &ahead,
            "--update=900",
        ],
    );

    kill_postmaster(lab, &old);
    let fault = Instant::now();
    let held = wait_held(lab, &ahead, "pre promote", Duration::from_secs(90));
    eprintln!(
        "[{NAME}] {ahead}'s pre-promote publication failed {:.1} s after the kill; releasing it in 10 s",
        held.duration_since(fault).as_secs_f64()
    );
    std::thread::sleep(Duration::from_secs(10));
    sh(
        lab,
        &ahead,
        &["rm", "-f", "/var/lib/postgresql/tusk-test/hold"],
    );
    let released = Instant::now();

    let new = wait_new_primary(lab, &old, Duration::from_secs(120));
    wait_writes_after(&writer, fault, 5, Duration::from_secs(60));
    figure(
        NAME,
        "kill -9 of the primary's postmaster",
        fault,
        &writer.report(),
    );
    eprintln!(
        "[{NAME}] FIGURE position released to {new} promoted: {:.1} s",
        released.elapsed().as_secs_f64()
    );
    for line in log_lines(lab, "WAL position")
        .iter()
        .chain(&log_lines(lab, "not promoting"))
    {
        eprintln!("[{NAME}] {line}");
    }
    let report = writer.stop();
    assert_eq!(
        new, ahead,
        "{behind}, without the commits only {ahead} held, was promoted"
    );
    assert_nothing_lost(lab, &report);
    assert_eq!(assert_one_primary_nothing_blocked(lab), new);
}

/// Waits until the wrapper on `node` refused a publication from an action
/// whose notification is `what` (`pre promote`, or `monitor`).
fn wait_held(lab: &tusk_lab::Lab, node: &str, what: &str, timeout: Duration) -> Instant {
    wait(
        &format!("{node} refusing a {what} publication"),
        timeout,
        || {
            lab.exec(node, &["cat", "/var/lib/postgresql/tusk-test/held.log"])
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(what))
        },
    );
    Instant::now()
}
