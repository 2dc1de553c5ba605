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
