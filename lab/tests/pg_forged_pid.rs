//! Issue 4, scenario 7 (DESIGN.md failure 1): a stopped standby's data
//! directory holds a postmaster.pid naming a PID that is alive in that
//! node, but belongs to an unrelated process (a `sleep` of the postgres
//! user: `kill -0` by postgres succeeds on it). A probe (resource refresh)
//! must not count the node as running the instance, nothing may signal the
//! unrelated process, and once allowed the instance starts there despite
//! the stale file, while the primary keeps serving writes.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tusk_lab::postgres::{self, PGDATA};

const NAME: &str = "pg-forged-pid";

#[test]
fn a_forged_postmaster_pid_does_not_count_as_running_and_does_not_block_a_start() {
    let (test, primary) = up_promotable(NAME, 3, |c| c);
    let lab = &test.lab;
    let writer = start_writer(lab);
    let standby = lab
        .nodes()
        .unwrap()
        .into_iter()
        .rfind(|n| *n != primary)
        .unwrap();

    sh(
        lab,
        &primary,
        &["pcs", "resource", "ban", postgres::CLONE, &standby],
    );
    wait(
        "the standby's instance to stop",
        Duration::from_secs(60),
        || {
            postgres::roles(lab).is_ok_and(|r| !r.unpromoted.contains(&standby))
                && postgres::postmaster_pid(lab, &standby).is_ok_and(|p| p.is_none())
        },
    );

    // The unrelated process, and a postmaster.pid that names it, written as
    // PostgreSQL 15 writes one.
    let pid = sh(
        lab,
        &standby,
        &[
            "sh",
            "-c",
            "setpriv --reuid=postgres --regid=postgres --clear-groups sleep 3600 </dev/null >/dev/null 2>&1 & echo $!",
        ],
    )
    .trim()
    .to_string();
    let alive = |pid: &str| {
        lab.exec(&standby, &["ps", "-o", "user=,comm=", "-p", pid])
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default()
    };
    assert_eq!(alive(&pid), "postgres sleep");
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let forged = format!(
        "{pid}\n{PGDATA}\n{started}\n5432\n/var/run/postgresql\n*\n  5432001         0\nready   \n"
    );
    let path = format!("{PGDATA}/postmaster.pid");
    sh(
        lab,
        &standby,
        &[
            "runuser",
            "-u",
            "postgres",
            "--",
            "sh",
            "-c",
            &format!("umask 077 && printf '%s' \"$0\" > {path}"),
            &forged,
        ],
    );
    assert_eq!(
        postgres::postmaster_pid(lab, &standby).unwrap(),
        Some(pid.parse().unwrap())
    );

    // A probe on every node: what runs where?
    let probes_before = probe_results(lab, &standby).len();
    let refreshed = Instant::now();
    sh(
        lab,
        &primary,
        &[
            "crm_resource",
            "--refresh",
            "--resource",
            postgres::CLONE,
            "--node",
            &standby,
        ],
    );
    wait(
        "the probe on the standby's node",
        Duration::from_secs(60),
        || probe_results(lab, &standby).len() > probes_before,
    );
    eprintln!(
        "[{NAME}] FIGURE refresh to the probe's result on {standby}: {:.1} s",
        refreshed.elapsed().as_secs_f64()
    );
    let probe = probe_results(lab, &standby).pop().unwrap();
    assert!(
        probe.contains("not running") && probe.contains("rc=7"),
        "the probe on {standby} counted the forged PID as running: {probe}"
    );
    std::thread::sleep(Duration::from_secs(3));
    let view = lab.view(&primary).unwrap();
    let roles = postgres::roles_in(&view);
    assert!(
        !roles.unpromoted.contains(&standby) && !roles.promoted.contains(&standby),
        "{roles:?}"
    );
    assert_eq!(roles.promoted, std::slice::from_ref(&primary));
    let failures = view.failures_of(postgres::RESOURCE);
    assert!(failures.is_empty(), "failed operations: {failures:?}");
    assert_eq!(
        alive(&pid),
        "postgres sleep",
        "the unrelated process was signalled"
    );

    // Allowed again, the instance starts despite the stale file.
    sh(
        lab,
        &primary,
        &["pcs", "resource", "clear", postgres::CLONE, &standby],
    );
    let cleared = Instant::now();
    assert_eq!(
        postgres::wait_replicating(lab, 2, Duration::from_secs(120)).unwrap(),
        primary
    );
    eprintln!(
        "[{NAME}] FIGURE start over a forged postmaster.pid to streaming: {:.1} s",
        cleared.elapsed().as_secs_f64()
    );
    assert_eq!(
        alive(&pid),
        "postgres sleep",
        "the unrelated process was signalled"
    );
    sh(lab, &standby, &["kill", &pid]);

    let report = writer.stop();
    assert!(
        report.failures.is_empty(),
        "the primary stopped serving writes: {:?}",
        &report.failures[..report.failures.len().min(5)]
    );
    assert_nothing_lost(lab, &report);
    assert_one_primary_nothing_blocked(lab);
}

/// The controller's log lines for probes of `pg` on `node`, oldest first.
fn probe_results(lab: &tusk_lab::Lab, node: &str) -> Vec<String> {
    let needle = format!(
        "Result of probe operation for {} on {node}:",
        postgres::RESOURCE
    );
    pacemaker_log(lab, node)
        .lines()
        .filter(|l| l.contains(&needle))
        .map(str::to_string)
        .collect()
}
