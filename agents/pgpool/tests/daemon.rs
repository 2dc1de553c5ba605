//! What of a real pgpool-II 4.3 the agent counts as this configuration's:
//! the main process through its pid file, and every member through /proc,
//! its orphans included, never another configuration's pgpool.

use ocf::service::{Service, State};
use std::collections::BTreeSet;
use tusk_pgpool::config::{Layout, PoolConfig};
use tusk_pgpool::daemon::Pgpool;
use tusk_pgpool::settings::Settings;
use tusk_testkit::pgpool::{primary_and_standby, Pgpool as Fixture};

fn fixture(primary: &tusk_testkit::Instance, standby: &tusk_testkit::Instance) -> Fixture {
    Fixture::for_pair(primary, standby)
}

fn daemon(pool: &Fixture) -> Pgpool {
    let conf = pool.conf.to_string_lossy();
    let params = ocf::Params::from_pairs(tusk_pgpool::config::PARAMS, &[("config", &conf)]);
    let cfg = PoolConfig::from_params(&params.unwrap()).unwrap();
    let layout = Layout::resolve(&cfg, &Settings::read(&pool.conf).unwrap()).unwrap();
    assert_eq!(layout.pid_file, pool.pid_file);
    let uid = tusk_testkit::postgres_user().uid.as_raw();
    Pgpool::new(&cfg, &layout, Some(uid))
}

fn pids(procs: &[ocf::process::ProcInfo]) -> BTreeSet<i32> {
    procs.iter().map(|p| p.pid).collect()
}

#[test]
fn orphans_are_found_by_their_sockets_and_another_pgpool_is_never_a_member() {
    let (primary, standby) = primary_and_standby("node2");
    let mut pool = fixture(&primary, &standby);
    let mut other = fixture(&primary, &standby);
    pool.start();
    other.start();
    let ours = daemon(&pool);
    let main = pool.main_pid().unwrap();
    match ours.observe().unwrap() {
        State::Running(p) => assert_eq!(p.pid, main),
        s => panic!("{s:?}"),
    }
    let everything: BTreeSet<i32> = pool.processes().iter().map(|p| p.pid).collect();
    let theirs: BTreeSet<i32> = other.processes().iter().map(|p| p.pid).collect();
    assert_eq!(pids(&ours.members().unwrap()), everything);
    assert!(everything.is_disjoint(&theirs));

    pool.kill_main();
    let orphans: BTreeSet<i32> = pool.processes().iter().map(|p| p.pid).collect();
    assert!(!orphans.is_empty() && !orphans.contains(&main));
    match ours.observe().unwrap() {
        State::Orphaned { members, stale } => {
            assert_eq!(pids(&members), orphans);
            let stale = stale.unwrap();
            assert!(
                stale.contains(&format!("PID {main} does not exist")),
                "{stale}"
            );
        }
        s => panic!("{s:?}"),
    }
    // The other configuration's pgpool is untouched by all this.
    match daemon(&other).observe().unwrap() {
        State::Running(p) => assert_eq!(Some(p.pid), other.main_pid()),
        s => panic!("{s:?}"),
    }
}
