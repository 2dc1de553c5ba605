//! Issue 11: nodes that come back by themselves under rebuild=auto, with a
//! writer going through the floating address the whole time and no write
//! it saw acknowledged lost.
//!
//! - A standby's node loses power, its pgdata is removed from its disk, and
//!   the node boots again: the probe finds nothing running (no error for a
//!   missing pgdata), start launches the rebuild and returns at once, the
//!   monitor reports it as degraded until the copy is in place, the node
//!   holds no promotion score until it streams, then gets one.
//! - A standby (replication_slots=off, wal_keep_size 0) is down while the
//!   primary writes and checkpoints past the WAL it needs: at boot its
//!   start finds the segment gone and rebuilds it, keeping the old
//!   directory beside the new one.
//! - The primary's postmaster is killed while a standby copies: the other
//!   standby is promoted without waiting for the rebuild, and the rebuild
//!   copies again from the new primary.
//! - A fourth node, kept out of the clone by a location ban and without
//!   pgdata, is let in: the agent builds it and it streams through its
//!   slot (a new node, as far as the agent sees one; no corosync
//!   membership change).
//!
//! The databases hold ~100 MB of filler so that the copy takes seconds.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use tusk_lab::postgres;
use tusk_lab::Lab;

/// ~100 MB in one table, replicated to the standbys before the fault.
fn fill(lab: &Lab, primary: &str) {
    let started = Instant::now();
    postgres::sql(
        lab,
        primary,
        "CREATE TABLE tusk_filler AS
         SELECT g, repeat(md5(g::text), 8) AS pad FROM generate_series(1, 300000) g",
    )
    .unwrap();
    let size = postgres::sql(
        lab,
        primary,
        "SELECT pg_size_pretty(sum(pg_database_size(datname))) FROM pg_database",
    )
    .unwrap();
    eprintln!(
        "databases on {primary}: {size} (filler written in {:.1} s)",
        started.elapsed().as_secs_f64()
    );
}

/// A standby of `primary` (the first other node).
fn a_standby(lab: &Lab, primary: &str) -> String {
    lab.nodes()
        .unwrap()
        .into_iter()
        .find(|n| n != primary)
        .unwrap()
}

/// What the test saw while waiting for `node` to stream from `primary`.
struct Rebuilt {
    /// From the wait's start to `node` streaming (and Unpromoted).
    streaming_after: Duration,
    /// When it was first seen streaming.
    streaming_at: Instant,
    /// Whether the rebuild's progress attribute was ever seen.
    progress_seen: bool,
}

/// Waits until `node` streams from `primary`, and fails at once if it ever
/// holds a promotion score before (each look reads the score first, then
/// `pg_stat_replication`: a score seen before a "not streaming" answer was
/// there while it did not stream).
fn wait_streaming_without_score_before(
    lab: &Lab,
    node: &str,
    primary: &str,
    timeout: Duration,
) -> Rebuilt {
    let started = Instant::now();
    let mut progress_seen = false;
    let mut last = String::new();
    let ok = tusk_lab::process::wait_for(&format!("{node} streaming"), timeout, || {
        let Ok(view) = lab.view(primary) else {
            return Ok(false);
        };
        let score = view
            .attribute(node, postgres::ATTR_PROMOTION)
            .map(str::to_string);
        if let Some(p) = view.attribute(node, "pg-rebuild") {
            progress_seen = true;
            last = format!("pg-rebuild={p}");
        }
        let streaming = postgres::replication(lab, primary)
            .unwrap_or_default()
            .iter()
            .any(|r| r.name == node && r.state == "streaming");
        let unpromoted = postgres::roles_in(&view)
            .unpromoted
            .contains(&node.to_string());
        if !streaming {
            assert!(
                score.is_none(),
                "{node} holds a promotion score ({score:?}) while not streaming ({last})"
            );
        }
        Ok(streaming && unpromoted)
    });
    if let Err(e) = ok {
        panic!("{e:#}; last seen: {last}");
    }
    Rebuilt {
        streaming_after: started.elapsed(),
        streaming_at: Instant::now(),
        progress_seen,
    }
}

/// The directories the rebuild kept beside pgdata (`PGDATA.tusk-old-*`),
/// as the host sees them.
fn kept_dirs(lab: &Lab, node: &str) -> Vec<PathBuf> {
    let pgdata = postgres::data_file(lab, node, "");
    let pgdata = pgdata.components().collect::<PathBuf>();
    let name = pgdata.file_name().unwrap().to_string_lossy().into_owned();
    let parent = pgdata.parent().unwrap_or(Path::new("/"));
    std::fs::read_dir(parent)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name().is_some_and(|f| {
                        f.to_string_lossy()
                            .starts_with(&format!("{name}.tusk-old-"))
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Nothing failed on `node` but the rebuild's degraded monitors (190,
/// which crm_mon lists among the failed actions); prints those.
fn assert_only_degraded(lab: &Lab, observer: &str, node: &str, name: &str) -> usize {
    let view = lab.view(observer).unwrap();
    let (degraded, failures): (Vec<_>, Vec<_>) = view
        .failures_of(postgres::RESOURCE)
        .into_iter()
        .filter(|f| f.node == node)
        .partition(|f| f.exitcode == 190);
    assert!(failures.is_empty(), "failures on {node}: {failures:?}");
    for d in &degraded {
        eprintln!("[{name}] {node} {}: {}", d.task, d.exitreason);
    }
    degraded.len()
}

/// Waits until `node` holds a promotion score again (its monitor after it
/// streams); returns how long it took.
fn wait_score(lab: &Lab, observer: &str, node: &str, timeout: Duration) -> Duration {
    let started = Instant::now();
    let mut last = None;
    let ok = tusk_lab::process::wait_for(&format!("a promotion score on {node}"), timeout, || {
        let Ok(view) = lab.view(observer) else {
            return Ok(false);
        };
        last = view
            .attribute(node, postgres::ATTR_PROMOTION)
            .map(str::to_string);
        Ok(last
            .as_deref()
            .is_some_and(|s| s.parse::<i64>().is_ok_and(|n| n > 0)))
    });
    if let Err(e) = ok {
        panic!("{e:#}; last value: {last:?}");
    }
    started.elapsed()
}

/// Waits until the majority fenced `node` (switched off) and its promotion
/// score is gone: the node then boots into a cluster that knows it left.
fn wait_fenced(lab: &Lab, observer: &str, node: &str) {
    wait(
        &format!("{node} fenced and without a score"),
        Duration::from_secs(90),
        || {
            lab.fence_history(observer, node)
                .is_ok_and(|h| h.iter().any(|e| e.succeeded()))
                && lab
                    .view(observer)
                    .is_ok_and(|v| v.attribute(node, postgres::ATTR_PROMOTION).is_none())
        },
    );
}

#[test]
fn a_standby_whose_data_was_deleted_while_down_is_rebuilt_by_itself() {
    const NAME: &str = "pg-rebuild";
    let (test, primary) = up_promotable(NAME, 3, |c| c.param("rebuild=auto"));
    let lab = &test.lab;
    fence_by_switching_off(lab);
    fill(lab, &primary);
    postgres::wait_replicating(lab, 2, Duration::from_secs(60)).unwrap();
    let writer = start_writer(lab);
    let standby = a_standby(lab, &primary);

    lab.crash(&standby).unwrap();
    let fault = Instant::now();
    // From the host side: the node is off, its disk stays.
    let pgdata = postgres::data_file(lab, &standby, "");
    std::fs::remove_dir_all(&pgdata).unwrap();
    eprintln!(
        "[{NAME}] {standby} lost power; removed its pgdata {}",
        pgdata.display()
    );
    wait_writes_after(&writer, fault, 5, Duration::from_secs(60));
    wait_fenced(lab, &primary, &standby);

    lab.power_on(&standby).unwrap();
    let booted = Instant::now();
    let rebuilt =
        wait_streaming_without_score_before(lab, &standby, &primary, Duration::from_secs(240));
    eprintln!(
        "[{NAME}] FIGURE boot of {standby} without pgdata to streaming from {primary}: {:.1} s \
         (progress attribute seen: {})",
        rebuilt.streaming_after.as_secs_f64(),
        rebuilt.progress_seen
    );
    assert!(
        postgres::data_file(lab, &standby, "PG_VERSION").exists(),
        "no data directory on {standby}"
    );
    let scored = wait_score(lab, &primary, &standby, Duration::from_secs(60));
    eprintln!(
        "[{NAME}] FIGURE streaming to a promotion score on {standby}: {:.1} s",
        scored.as_secs_f64()
    );
    // Nothing failed on the way: a missing pgdata is a node to build.
    let degraded = assert_only_degraded(lab, &primary, &standby, NAME);
    wait_writes_after(&writer, Instant::now(), 3, Duration::from_secs(30));

    let report = writer.stop();
    let gap = report
        .longest_gap(booted, rebuilt.streaming_at)
        .expect("writes acknowledged before the boot");
    eprintln!(
        "[{NAME}] FIGURE longest write gap from the boot to streaming: {:.2} s ({} writes \
         acknowledged meanwhile; {degraded} degraded monitors recorded)",
        gap.as_secs_f64(),
        report
            .acknowledged_between(booted, rebuilt.streaming_at)
            .len()
    );
    assert!(
        gap < Duration::from_secs(5),
        "writes stalled {gap:?} during the rebuild"
    );
    figure(
        NAME,
        "power loss of a standby and its pgdata",
        fault,
        &report,
    );
    assert_nothing_lost(lab, &report);
    assert_eq!(assert_one_primary_nothing_blocked(lab), primary);
    assert!(
        postgres::replication(lab, &primary)
            .unwrap()
            .iter()
            .filter(|r| r.state == "streaming")
            .count()
            == 2,
        "not both standbys streaming"
    );
}

#[test]
fn a_standby_whose_wal_the_primary_removed_is_rebuilt_by_itself() {
    const NAME: &str = "pg-rebuild-wal-gone";
    let (test, primary) = up_promotable(NAME, 3, |c| {
        c.param("rebuild=auto").param("replication_slots=off")
    });
    let lab = &test.lab;
    fence_by_switching_off(lab);
    fill(lab, &primary);
    // The primary keeps no WAL for a standby that is not connected.
    postgres::sql(lab, &primary, "ALTER SYSTEM SET wal_keep_size = 0").unwrap();
    postgres::sql(lab, &primary, "SELECT pg_reload_conf()").unwrap();
    postgres::wait_replicating(lab, 2, Duration::from_secs(60)).unwrap();
    let writer = start_writer(lab);
    let standby = a_standby(lab, &primary);
    let needed = postgres::sql(
        lab,
        &primary,
        &format!(
            "SELECT pg_walfile_name(replay_lsn) FROM pg_stat_replication \
             WHERE application_name = '{standby}'"
        ),
    )
    .unwrap();
    assert!(!needed.is_empty(), "{standby} not in pg_stat_replication");

    lab.crash(&standby).unwrap();
    let fault = Instant::now();
    wait_writes_after(&writer, fault, 5, Duration::from_secs(60));
    // Past the segment the standby needs: switch segments and checkpoint
    // until it is gone from pg_wal.
    let gone = || {
        postgres::sql(
            lab,
            &primary,
            &format!("SELECT count(*) FROM pg_ls_waldir() WHERE name = '{needed}'"),
        )
        .unwrap()
            == "0"
    };
    let mut rounds = 0;
    while !gone() {
        rounds += 1;
        assert!(rounds <= 20, "{needed} still on {primary} after 20 rounds");
        postgres::sql(
            lab,
            &primary,
            "INSERT INTO tusk_filler SELECT g, 'x' FROM generate_series(1, 20000) g",
        )
        .unwrap();
        postgres::sql(lab, &primary, "SELECT pg_switch_wal()").unwrap();
        postgres::sql(lab, &primary, "CHECKPOINT").unwrap();
    }
    eprintln!(
        "[{NAME}] {standby} off; {needed}, which it needs, removed from {primary} after \
         {rounds} rounds of writes, segment switch and checkpoint"
    );
    assert!(kept_dirs(lab, &standby).is_empty());
    wait_fenced(lab, &primary, &standby);

    lab.power_on(&standby).unwrap();
    let booted = Instant::now();
    let rebuilt =
        wait_streaming_without_score_before(lab, &standby, &primary, Duration::from_secs(240));
    eprintln!(
        "[{NAME}] FIGURE boot of {standby} (its WAL gone) to streaming from {primary}: {:.1} s \
         (progress attribute seen: {})",
        rebuilt.streaming_after.as_secs_f64(),
        rebuilt.progress_seen
    );
    // Rebuilt, not caught up some other way: the old directory is kept.
    let kept = kept_dirs(lab, &standby);
    assert_eq!(kept.len(), 1, "kept directories: {kept:?}");
    assert!(
        kept[0].join("PG_VERSION").exists(),
        "the kept directory {} is not the old pgdata",
        kept[0].display()
    );
    let rebuilds = log_lines(lab, "rebuild");
    eprintln!(
        "[{NAME}] the agent's log about the rebuild:\n{}",
        rebuilds
            .iter()
            .filter(|l| l.contains(&standby) || l.contains("postgresql"))
            .take(12)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    wait_score(lab, &primary, &standby, Duration::from_secs(60));
    let degraded = assert_only_degraded(lab, &primary, &standby, NAME);
    wait_writes_after(&writer, Instant::now(), 3, Duration::from_secs(30));

    let report = writer.stop();
    let gap = report
        .longest_gap(booted, rebuilt.streaming_at)
        .expect("writes acknowledged before the boot");
    eprintln!(
        "[{NAME}] FIGURE longest write gap from the boot to streaming: {:.2} s \
         ({degraded} degraded monitors recorded)",
        gap.as_secs_f64()
    );
    assert!(
        gap < Duration::from_secs(5),
        "writes stalled {gap:?} during the rebuild"
    );
    assert_nothing_lost(lab, &report);
    assert_eq!(assert_one_primary_nothing_blocked(lab), primary);
}

/// Bytes of the regular files under `dir`.
fn size_of(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(entry.path()),
                Ok(t) if t.is_file() => total += entry.metadata().map_or(0, |m| m.len()),
                _ => {}
            }
        }
    }
    total
}

/// The primary fails while a standby is being rebuilt from it: the other
/// standby is promoted as quickly as without a rebuild (the rebuild runs
/// outside any action, so no transition waits for it), and the rebuilding
/// node copies again from the new primary by itself.
#[test]
fn a_failover_during_a_rebuild_is_not_delayed_and_the_rebuild_follows_the_new_primary() {
    const NAME: &str = "pg-rebuild-failover";
    let (test, primary) = up_promotable(NAME, 3, |c| c.param("rebuild=auto"));
    let lab = &test.lab;
    fence_by_switching_off(lab);
    postgres::sql(
        lab,
        &primary,
        "CREATE TABLE big AS SELECT g, repeat('x', 500) AS filler FROM generate_series(1, 600000) g",
    )
    .unwrap();
    let writer = start_writer(lab);
    let standby = lab
        .nodes()
        .unwrap()
        .into_iter()
        .find(|n| *n != primary)
        .unwrap();
    lab.crash(&standby).unwrap();
    std::fs::remove_dir_all(postgres::data_file(lab, &standby, "")).unwrap();
    lab.restart(&standby).unwrap();
    let building = postgres::data_file(lab, &standby, "");
    let building = std::path::PathBuf::from(format!(
        "{}.tusk-rebuild",
        building.to_string_lossy().trim_end_matches('/')
    ));
    wait(
        "the rebuild to copy 20 MB",
        Duration::from_secs(120),
        || size_of(&building) > 20 << 20,
    );

    kill_postmaster(lab, &primary);
    let fault = Instant::now();
    eprintln!(
        "[{NAME}] killed the primary's postmaster on {primary} while {standby} copies ({} MB)",
        size_of(&building) >> 20
    );
    let new = wait_new_primary(lab, &primary, Duration::from_secs(120));
    eprintln!(
        "[{NAME}] FIGURE kill -9 of the primary during a rebuild to {new} promoted: {:.1} s",
        fault.elapsed().as_secs_f64()
    );
    assert_ne!(new, standby, "the node being rebuilt was promoted");
    wait_writes_after(&writer, fault, 5, Duration::from_secs(60));
    let report = writer.stop();
    figure(
        NAME,
        "kill -9 of the primary during a rebuild",
        fault,
        &report,
    );

    // The rebuild copies again from the new primary. (The old primary's
    // instance stays stopped: migration-threshold=1 bans it after its
    // failure, as in pg_kill.)
    wait(
        "the rebuilt node streaming from the new primary",
        Duration::from_secs(180),
        || {
            postgres::replication(lab, &new).is_ok_and(|r| {
                r.iter()
                    .any(|r| r.name == standby && r.state == "streaming")
            })
        },
    );
    eprintln!(
        "[{NAME}] FIGURE kill -9 to {standby}, rebuilt from {new}, streaming: {:.1} s",
        fault.elapsed().as_secs_f64()
    );
    assert_eq!(
        postgres::sql(lab, &standby, "SELECT count(*) FROM big").unwrap(),
        "600000"
    );
    assert_nothing_lost(lab, &report);
    assert_eq!(assert_one_primary_nothing_blocked(lab), new);
}

/// Issue 11's new node: a fourth node, a cluster member from the start but
/// kept out of the clone by a location ban, with no data directory at all
/// (its /var/lib/postgresql/15 exists, as the postgresql-15 package leaves
/// it; pgdata does not). The ban is lifted while a writer goes through the
/// floating address: the agent builds the node by itself and it streams.
///
/// What this does not exercise: corosync membership changes. The lab
/// writes corosync.conf itself and runs no pcsd, so `pcs cluster node add`
/// is not run; node4 is in corosync's membership from the start. What is
/// exercised is the agent's side of a new node: the first start of a clone
/// instance on a node that never had PostgreSQL data.
#[test]
fn a_new_node_with_no_data_directory_is_built_by_itself_when_let_in() {
    const NAME: &str = "pg-new-node";
    // The clone on node1..node3 only: node4 gets `pcs constraint location
    // pg-clone avoids node4` and no data (replicate_by_hand touches only
    // the clone's nodes).
    let (test, primary) = up_promotable(NAME, 4, |mut c| {
        c.nodes.truncate(3);
        c.param("rebuild=auto")
    });
    let lab = &test.lab;
    let new = lab.nodes().unwrap().pop().unwrap();
    assert_eq!(new, "node4");
    let pgdata = postgres::data_file(lab, &new, "");
    assert!(!pgdata.exists(), "{} exists on {new}", pgdata.display());
    // What the postgresql-15 package leaves on a new node: its version
    // directory, owned by postgres (pgdata's parent; the agent does not
    // create directories above pgdata). Without it the rebuild worker
    // fails ("statvfs /var/lib/postgresql/15: ENOENT"), its monitor answers
    // 1 and migration-threshold=1 bans the clone from the node: tried once
    // on this lab, not asserted here.
    sh(
        lab,
        &new,
        &[
            "install",
            "-d",
            "-o",
            "postgres",
            "-g",
            "postgres",
            "-m",
            "0755",
            "/var/lib/postgresql/15",
        ],
    );
    fill(lab, &primary);
    postgres::wait_replicating(lab, 2, Duration::from_secs(60)).unwrap();
    let writer = start_writer(lab);
    {
        let view = lab.view(&primary).unwrap();
        assert!(
            view.attribute(&new, postgres::ATTR_PROMOTION).is_none(),
            "{new} holds a promotion score while banned"
        );
        let started = view.nodes_in_role(postgres::RESOURCE, "Started");
        let roles = postgres::roles_in(&view);
        assert!(
            !started.contains(&new.as_str())
                && !roles.unpromoted.contains(&new)
                && !roles.promoted.contains(&new),
            "the clone runs on {new} while banned: {roles:?}"
        );
    }
    // The primary keeps a slot for every cluster member, banned or not:
    // what it holds for a node that never streamed.
    let slot_before = postgres::sql(
        lab,
        &primary,
        "SELECT active, wal_status, \
         pg_size_pretty(pg_current_wal_lsn() - restart_lsn) \
         FROM pg_replication_slots WHERE slot_name = 'tusk_node4'",
    )
    .unwrap();
    eprintln!(
        "[{NAME}] before {new} is let in: slot tusk_node4 on {primary} \
         (active|wal_status|WAL retained): {slot_before:?}"
    );

    // Let it in: what an operator does once the node is in the cluster.
    // (cibadmin by the constraint's content, not pcs by an id whose
    // spelling differs between pcs versions.)
    sh(
        lab,
        &primary,
        &[
            "cibadmin",
            "--delete",
            "--xpath",
            &format!(
                "//rsc_location[@rsc='{}' and @node='{new}']",
                postgres::CLONE
            ),
        ],
    );
    let let_in = Instant::now();
    eprintln!("[{NAME}] removed the ban of {new}");
    let rebuilt =
        wait_streaming_without_score_before(lab, &new, &primary, Duration::from_secs(240));
    eprintln!(
        "[{NAME}] FIGURE ban lifted to {new} (no pgdata) streaming from {primary}: {:.1} s \
         (progress attribute seen: {})",
        rebuilt.streaming_after.as_secs_f64(),
        rebuilt.progress_seen
    );
    assert!(
        postgres::data_file(lab, &new, "PG_VERSION").exists(),
        "no data directory on {new}"
    );
    // Built by a base backup (not initdb'd, not copied some other way).
    let label = std::fs::read_to_string(postgres::data_file(lab, &new, "backup_label.old"))
        .expect("no backup_label.old on the new node");
    assert!(label.contains("BACKUP METHOD: streamed"), "{label}");
    // A new directory: nothing to keep beside it.
    assert!(
        kept_dirs(lab, &new).is_empty(),
        "{:?}",
        kept_dirs(lab, &new)
    );
    // It streams through its own slot on the primary.
    assert_eq!(
        postgres::sql(lab, &new, "SELECT slot_name FROM pg_stat_wal_receiver").unwrap(),
        "tusk_node4"
    );
    assert_eq!(
        postgres::sql(
            lab,
            &primary,
            "SELECT active FROM pg_replication_slots WHERE slot_name = 'tusk_node4'"
        )
        .unwrap(),
        "t",
        "no active slot tusk_node4 on {primary}"
    );
    let scored = wait_score(lab, &primary, &new, Duration::from_secs(60));
    eprintln!(
        "[{NAME}] FIGURE streaming to a promotion score on {new}: {:.1} s",
        scored.as_secs_f64()
    );
    let degraded = assert_only_degraded(lab, &primary, &new, NAME);
    let view = lab.view(&primary).unwrap();
    for node in lab.nodes().unwrap().iter().filter(|n| **n != new) {
        let failures: Vec<_> = view
            .failures_of(postgres::RESOURCE)
            .into_iter()
            .filter(|f| f.node == *node)
            .collect();
        assert!(failures.is_empty(), "failures on {node}: {failures:?}");
    }
    wait_writes_after(&writer, Instant::now(), 3, Duration::from_secs(30));

    let report = writer.stop();
    let gap = report
        .longest_gap(let_in, rebuilt.streaming_at)
        .expect("writes acknowledged before the ban was lifted");
    eprintln!(
        "[{NAME}] FIGURE longest write gap from the ban lifted to {new} streaming: {:.2} s ({} \
         writes acknowledged meanwhile; {degraded} degraded monitors recorded)",
        gap.as_secs_f64(),
        report
            .acknowledged_between(let_in, rebuilt.streaming_at)
            .len()
    );
    assert!(
        gap < Duration::from_secs(5),
        "writes stalled {gap:?} while the new node was built"
    );
    assert_nothing_lost(lab, &report);
    assert_eq!(assert_one_primary_nothing_blocked(lab), primary);
    assert_eq!(
        postgres::replication(lab, &primary)
            .unwrap()
            .iter()
            .filter(|r| r.state == "streaming")
            .count(),
        3,
        "not three standbys streaming"
    );
}
