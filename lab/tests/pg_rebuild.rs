//! Issue 11: a node whose data directory was deleted while it was down
//! comes back by itself under rebuild=auto. A standby's node loses power,
//! its pgdata is removed from its disk, and the node boots again: the
//! probe finds nothing running (no error for a missing pgdata), start
//! launches the rebuild and returns at once, the monitor reports it as
//! degraded until the copy is in place, and the node streams again. A
//! writer goes through the floating address the whole time, and no write
//! it saw acknowledged is lost.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tusk_lab::postgres;

const NAME: &str = "pg-rebuild";

#[test]
fn a_standby_whose_data_was_deleted_while_down_is_rebuilt_by_itself() {
    let (test, primary) = up_promotable(NAME, 3, |c| c.param("rebuild=auto"));
    let lab = &test.lab;
    fence_by_switching_off(lab);
    let writer = start_writer(lab);
    let standby = lab
        .nodes()
        .unwrap()
        .into_iter()
        .find(|n| *n != primary)
        .unwrap();

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

    lab.restart(&standby).unwrap();
    let booted = Instant::now();
    let streaming_from = postgres::wait_replicating(lab, 2, Duration::from_secs(240))
        .expect("the rebuilt standby streaming");
    eprintln!(
        "[{NAME}] FIGURE boot of {standby} without pgdata to streaming from {streaming_from}: \
         {:.1} s",
        booted.elapsed().as_secs_f64()
    );
    assert_eq!(streaming_from, primary);
    assert!(
        postgres::data_file(lab, &standby, "PG_VERSION").exists(),
        "no data directory on {standby}"
    );
    // Nothing failed on the way: a missing pgdata is a node to build. The
    // rebuild itself shows as degraded (190), which crm_mon lists among
    // the failed actions.
    let view = lab.view(&primary).unwrap();
    let (degraded, failures): (Vec<_>, Vec<_>) = view
        .failures_of(postgres::RESOURCE)
        .into_iter()
        .filter(|f| f.node == standby)
        .partition(|f| f.exitcode == 190);
    assert!(failures.is_empty(), "failures on {standby}: {failures:?}");
    for d in &degraded {
        eprintln!("[{NAME}] {standby} {}: {}", d.task, d.exitreason);
    }

    let report = writer.stop();
    figure(
        NAME,
        "power loss of a standby and its pgdata",
        fault,
        &report,
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
