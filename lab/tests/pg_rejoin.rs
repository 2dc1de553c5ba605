//! Issue 4, scenario 6 (DESIGN.md failures 2 and 3): a former primary comes
//! back after a failover. To make sure it really diverged, its walsenders
//! are frozen (SIGSTOP) and it commits a row with synchronous_commit=local
//! that no standby receives; then its node loses power and Pacemaker
//! switches it off (stonith-action=off), a standby is promoted, and the
//! test boots the node again.
//! - rewind=auto: the instance rejoins by itself as a standby streaming on
//!   the new timeline, without the diverged row.
//! - rewind=off: its start fails with a reason naming the pg_rewind command
//!   to run, and the rest of the cluster keeps running (a start that
//!   failed with OCF_ERR_CONFIGURED would stop the clone everywhere).

mod common;

use std::time::{Duration, Instant};

use common::*;
use tusk_lab::postgres::{self, RewindMode};

/// Brings up the clone, diverges and crashes the primary, waits for the
/// failover. Returns the lab, the writer, the old and the new primary.
fn failover_after_divergence(
    name: &str,
    rewind: RewindMode,
) -> (common::TestLab, tusk_lab::harness::Writer, String, String) {
    let (test, old) = up_promotable(name, 3, |c| c.rewind(rewind));
    let lab = &test.lab;
    fence_by_switching_off(lab);
    postgres::sql(lab, &old, "CREATE TABLE tusk_diverged (note text)").unwrap();
    postgres::wait_replicating(lab, 2, Duration::from_secs(30)).unwrap();
    let writer = start_writer(lab);

    let walsenders = postgres::sql(lab, &old, "SELECT pid FROM pg_stat_replication").unwrap();
    for pid in walsenders.lines() {
        sh(lab, &old, &["kill", "-STOP", pid.trim()]);
    }
    postgres::sql(
        lab,
        &old,
        "SET synchronous_commit = local; INSERT INTO tusk_diverged VALUES ('only on the old primary')",
    )
    .unwrap();
    lab.crash(&old).unwrap();
    let fault = Instant::now();
    let new = wait_new_primary(lab, &old, Duration::from_secs(120));
    wait_writes_after(&writer, fault, 5, Duration::from_secs(60));
    figure(
        name,
        "power loss of the diverged primary",
        fault,
        &writer.report(),
    );
    (test, writer, old, new)
}

#[test]
fn under_rewind_auto_the_old_primary_rejoins_by_itself() {
    const NAME: &str = "pg-rejoin-auto";
    let (test, writer, old, new) = failover_after_divergence(NAME, RewindMode::Auto);
    let lab = &test.lab;

    lab.restart(&old).unwrap();
    let booted = Instant::now();
    let primary = postgres::wait_replicating(lab, 2, Duration::from_secs(120))
        .expect("the old primary streaming from the new one");
    eprintln!(
        "[{NAME}] FIGURE boot of the old primary to streaming from {new}: {:.1} s (rewound: {})",
        booted.elapsed().as_secs_f64(),
        postgres::was_rewound(lab, &old)
    );
    assert_eq!(primary, new);
    assert_eq!(
        postgres::timeline(lab, &old).unwrap(),
        postgres::timeline(lab, &new).unwrap(),
        "the old primary is not on the new primary's timeline"
    );
    assert_eq!(
        postgres::sql(lab, &old, "SELECT count(*) FROM tusk_diverged").unwrap(),
        "0",
        "the old primary still has its diverged row"
    );
    let report = writer.stop();
    assert_nothing_lost(lab, &report);
    assert_one_primary_nothing_blocked(lab);
}

#[test]
fn under_rewind_off_the_old_primarys_start_fails_naming_pg_rewind() {
    const NAME: &str = "pg-rejoin-off";
    let (test, writer, old, new) = failover_after_divergence(NAME, RewindMode::Off);
    let lab = &test.lab;

    lab.restart(&old).unwrap();
    let booted = Instant::now();
    let mut failure = None;
    wait(
        "the old primary's start to fail",
        Duration::from_secs(120),
        || {
            let Ok(view) = lab.view(&new) else {
                return false;
            };
            failure = view
                .failures_of(postgres::RESOURCE)
                .into_iter()
                .find(|f| f.node == old && f.task == "start")
                .cloned();
            failure.is_some()
        },
    );
    let failure = failure.unwrap();
    eprintln!(
        "[{NAME}] FIGURE boot of the old primary to its failed start: {:.1} s: rc {} {:?}",
        booted.elapsed().as_secs_f64(),
        failure.exitcode,
        failure.exitreason
    );
    // Pacemaker keeps 128 characters of a reason: the whole command must
    // fit, up to its last argument.
    assert!(
        failure
            .exitreason
            .contains("pg_rewind -D /var/lib/postgresql/15/lab")
            && failure.exitreason.contains("dbname=postgres"),
        "the reason does not name the whole pg_rewind command: {failure:?}"
    );
    assert!(
        [1, 6].contains(&failure.exitcode),
        "start failed with {}, not 1 or 6",
        failure.exitcode
    );

    // The cluster goes on without it.
    let resumed = Instant::now();
    wait_writes_after(&writer, resumed, 5, Duration::from_secs(30));
    let roles = postgres::roles(lab).unwrap();
    assert_eq!(roles.promoted, std::slice::from_ref(&new), "{roles:?}");
    assert!(
        !roles.unpromoted.contains(&old),
        "{old} runs as a standby: {roles:?}"
    );
    let replicas = postgres::replication(lab, &new).unwrap();
    assert!(
        replicas.iter().all(|r| r.name != old),
        "{old} streams from {new}: {replicas:?}"
    );
    let report = writer.stop();
    assert_nothing_lost(lab, &report);
    assert_one_primary_nothing_blocked(lab);
}
