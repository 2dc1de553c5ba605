//! rebuild=auto against real PostgreSQL 15 servers on this host: a node
//! with no data, or whose WAL the primary removed, copied anew from the
//! primary by a detached worker while start returns at once; the worker
//! killed, or the resource stopped, halfway; a former primary that may
//! hold the only copy of commits left alone.

use ocf::Status;
use tusk_testkit::{append, wait_until, Agent, Instance};

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const AGENT: &str = env!("CARGO_BIN_EXE_postgresql");

/// The resource of this test alone (nextest runs each test in a process
/// of its own): the agent's run directory (/run/tusk/RESOURCE, where the
/// rebuild is recorded) and state directory are removed when it ends.
struct Resource {
    name: String,
}

impl Resource {
    fn new() -> Resource {
        Resource {
            name: format!("pgrebuild{}", std::process::id()),
        }
    }

    fn run_dir(&self) -> PathBuf {
        Path::new("/run/tusk").join(&self.name)
    }

    fn rebuild(&self, pg: &Instance) -> tusk_postgresql::rebuild::Rebuild {
        tusk_postgresql::rebuild::Rebuild::in_dir(&self.run_dir(), &pg.pgdata)
    }

    /// The worker the rebuild record of `pg` names.
    fn worker(&self, pg: &Instance) -> Option<i32> {
        let record = std::fs::read_to_string(self.rebuild(pg).record_path()).ok()?;
        record
            .split_whitespace()
            .find_map(|w| w.strip_prefix("pid="))?
            .parse()
            .ok()
    }
}

impl Drop for Resource {
    fn drop(&mut self) {
        // A worker still running (a failed test) is ended first.
        for record in std::fs::read_dir(self.run_dir())
            .into_iter()
            .flatten()
            .flatten()
        {
            let text = std::fs::read_to_string(record.path()).unwrap_or_default();
            let pid = text
                .split_whitespace()
                .find_map(|w| w.strip_prefix("pid="))
                .and_then(|p| p.parse().ok());
            if let Some(pid) = pid {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        let _ = std::fs::remove_dir_all(self.run_dir());
        let _ = std::fs::remove_dir_all(Path::new("/var/lib/tusk").join(&self.name));
    }
}

fn agent(res: &Resource, pg: &Instance, node: &str, primary: &Instance) -> Agent {
    pg.agent()
        .env("OCF_RESKEY_CRM_meta_promoted_max", "1")
        .env("OCF_RESKEY_CRM_meta_on_node", node)
        .env("OCF_RESOURCE_INSTANCE", &res.name)
        .param("primary_host", &primary.socketdir)
        .param("repl_user", "postgres")
        .param("sync", "off")
}

fn auto(res: &Resource, pg: &Instance, node: &str, primary: &Instance) -> Agent {
    let a = agent(res, pg, node, primary).param("rebuild", "auto");
    match std::env::var("TUSK_TEST_HA_LOGFILE") {
        Ok(f) => a.env("HA_LOGFILE", &f).env("HA_debug", "1"),
        Err(_) => a,
    }
}

/// A primary made by the agent (started as a standby, then promoted),
/// with `rows` rows of 500 bytes in table big.
fn primary(res: &Resource, rows: u32) -> Instance {
    let pg = Instance::new(AGENT);
    append(
        &pg.pgdata.join("postgresql.conf"),
        "wal_log_hints = on\nwal_keep_size = '64MB'\n",
    );
    agent(res, &pg, "node1", &pg)
        .run("start")
        .expect(Status::Success);
    agent(res, &pg, "node1", &pg)
        .run("promote")
        .expect(Status::Success);
    pg.psql("CREATE TABLE t (v text); INSERT INTO t VALUES ('before')");
    pg.psql(&format!(
        "CREATE TABLE big AS SELECT g, repeat('x', 500) AS filler FROM generate_series(1, {rows}) g"
    ));
    pg
}

fn streaming(primary: &Instance, node: &str) -> bool {
    primary.replication_state(node).as_deref() == Some("streaming")
}

/// Monitors until the rebuild is over: every answer until then is 190.
fn monitor_until_streaming(agent: impl Fn() -> Agent, limit: Duration) -> Vec<String> {
    let end = Instant::now() + limit;
    let mut said = Vec::new();
    loop {
        let m = agent().run("monitor");
        if m.code == i32::from(Status::Success.code()) {
            return said;
        }
        assert_eq!(
            m.code,
            i32::from(Status::Degraded.code()),
            "while rebuilding: {}",
            m.stderr
        );
        said.push(m.reason().to_string());
        assert!(
            Instant::now() < end,
            "not rebuilt within {limit:?}: {said:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn kept_dirs(pg: &Instance) -> Vec<PathBuf> {
    std::fs::read_dir(pg.root())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().contains("data.tusk-old-"))
        .collect()
}

fn building(pg: &Instance) -> PathBuf {
    pg.root().join("data.tusk-rebuild")
}

/// Until some of the copy is there (20 MB).
fn wait_halfway(s: &Instance) {
    assert!(
        wait_until(
            Duration::from_secs(60),
            || tusk_postgresql::rebuild::dir_size(&building(s)) > 20 << 20
        ),
        "the copy did not grow"
    );
}

/// The processes still copying into `s`'s half-built directory.
fn copying_into(s: &Instance) -> Vec<ocf::process::ProcInfo> {
    let target = building(s);
    ocf::process::find_processes(&ocf::process::Expected {
        arg: Some(target.as_os_str()),
        ..Default::default()
    })
    .unwrap()
}

/// The rebuild of node3 (`s`, a standby of `p` holding 300000 rows in
/// `big`) completes: it streams with every row, the old directory kept.
fn rebuilt_whole(node3: impl Fn() -> Agent, p: &Instance, s: &Instance) {
    monitor_until_streaming(node3, Duration::from_secs(180));
    assert!(streaming(p, "node3"));
    assert_eq!(s.psql("SELECT count(*) FROM big"), "300000");
    assert_eq!(kept_dirs(s).len(), 1);
}

#[test]
fn an_empty_node_is_built_in_the_background_and_streams() {
    let res = Resource::new();
    let p = primary(&res, 200_000);
    // ALTER SYSTEM without a reload: in the primary's auto.conf, which
    // pg_basebackup copies, and not in force on the primary.
    p.psql("ALTER SYSTEM SET synchronous_standby_names = 'node9'");
    let s = Instance::empty(AGENT);
    let node2 = || auto(&res, &s, "node2", &p);

    let started = node2().run("start").expect(Status::Success);
    assert!(
        started.took < Duration::from_secs(5),
        "start waited for the copy: {:?}",
        started.took
    );
    let first = node2().run("monitor").expect(Status::Degraded);
    assert!(
        first.reason().contains("rebuilding from"),
        "{}",
        first.reason()
    );
    // Start again while it runs: nothing new.
    node2().run("start").expect(Status::Success);
    let said = monitor_until_streaming(node2, Duration::from_secs(180));
    assert!(!said.is_empty());
    assert!(streaming(&p, "node2"), "monitor 0 before streaming");
    assert_eq!(s.psql("SELECT count(*) FROM big"), "200000");
    let auto_conf = std::fs::read_to_string(s.pgdata.join("postgresql.auto.conf")).unwrap();
    assert!(
        !auto_conf.contains("synchronous_standby_names"),
        "{auto_conf}"
    );
    assert!(kept_dirs(&s).is_empty(), "an empty directory is not kept");
    assert!(!building(&s).exists());
    node2().run("stop").expect(Status::Success);
    node2().run("monitor").expect(Status::NotRunning);
}

#[test]
fn a_missing_pgdata_is_not_installed_under_off_and_a_node_to_build_under_auto() {
    let res = Resource::new();
    let p = primary(&res, 1_000);
    let s = Instance::empty(AGENT);
    std::fs::remove_dir(&s.pgdata).unwrap();
    let off = || agent(&res, &s, "node2", &p);
    // A probe of a node without pgdata: not running, under either policy.
    off().run("monitor").expect(Status::NotRunning);
    off().run("validate-all").expect(Status::ErrInstalled);
    let refused = off().run("start").expect(Status::ErrInstalled);
    assert!(
        refused.reason().contains("does not exist"),
        "{}",
        refused.reason()
    );
    assert!(!s.pgdata.exists());

    let node2 = || auto(&res, &s, "node2", &p);
    node2().run("monitor").expect(Status::NotRunning);
    node2().run("validate-all").expect(Status::Success);
    node2().run("start").expect(Status::Success);
    monitor_until_streaming(node2, Duration::from_secs(120));
    assert!(streaming(&p, "node2"));
    p.psql("INSERT INTO t VALUES ('after')");
    assert!(wait_until(Duration::from_secs(20), || s
        .psql("SELECT count(*) FROM t WHERE v = 'after'")
        == "1"));
    node2().run("stop").expect(Status::Success);
}

#[test]
fn a_blank_node_whose_data_directory_has_no_parent_fails_its_start_not_its_monitor() {
    let res = Resource::new();
    let p = primary(&res, 10);
    let mut s = Instance::empty(AGENT);
    s.pgdata = s.root().join("no-such-parent/data");
    // Before: start launched a worker that failed at statvfs, and only the
    // monitor told (1, and a ban under migration-threshold=1).
    let refused = auto(&res, &s, "node2", &p)
        .run("start")
        .expect(Status::ErrInstalled);
    assert!(
        refused.reason().contains("parent directory"),
        "{}",
        refused.reason()
    );
    auto(&res, &s, "node2", &p)
        .run("monitor")
        .expect(Status::NotRunning);
}

/// Writes on `p` until WAL written now is gone from its pg_wal once the
/// standby stopped (nothing keeps it: wal_keep_size 0, no slot).
fn write_past_retention(p: &Instance) {
    p.psql("ALTER SYSTEM SET wal_keep_size = 0");
    p.psql("SELECT pg_reload_conf()");
    for _ in 0..4 {
        p.psql("INSERT INTO t SELECT 'filler' FROM generate_series(1, 1000)");
        p.psql("SELECT pg_switch_wal()");
        p.psql("CHECKPOINT");
    }
}

/// A standby of `p` on node3, without a slot, stopped after streaming, and
/// left behind by the primary's WAL recycling.
fn standby_left_behind(res: &Resource, p: &Instance) -> Instance {
    let s = p.standby("basebackup");
    let node3 = || auto(res, &s, "node3", p).param("replication_slots", "off");
    node3().run("start").expect(Status::Success);
    assert!(wait_until(Duration::from_secs(20), || streaming(
        p, "node3"
    )));
    node3().run("stop").expect(Status::Success);
    write_past_retention(p);
    // Something of the old directory's own, to find it again.
    s.write_owned(&s.pgdata.join("tusk-test-old"), "old\n");
    s
}

#[test]
fn a_standby_whose_wal_the_primary_removed_is_rebuilt_and_its_old_directory_kept() {
    let res = Resource::new();
    let p = primary(&res, 1_000);
    let s = standby_left_behind(&res, &p);
    let node3 = || auto(&res, &s, "node3", &p).param("replication_slots", "off");
    let started = node3().run("start").expect(Status::Success);
    assert!(started.took < Duration::from_secs(10), "{:?}", started.took);
    assert!(
        started.stderr.contains("no longer has WAL segment"),
        "{}",
        started.stderr
    );
    monitor_until_streaming(node3, Duration::from_secs(120));
    assert!(streaming(&p, "node3"));
    assert!(!s.pgdata.join("tusk-test-old").exists());
    let kept = kept_dirs(&s);
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(kept[0].join("tusk-test-old").exists());
    assert!(kept[0].join("PG_VERSION").exists());
    node3().run("stop").expect(Status::Success);

    // Under rebuild=off, the same standby starts and never streams (the
    // slot test in promotable.rs shows it).
}

#[test]
fn a_killed_worker_leaves_the_old_directory_and_the_next_start_completes() {
    let res = Resource::new();
    let p = primary(&res, 300_000);
    let s = standby_left_behind(&res, &p);
    let node3 = || auto(&res, &s, "node3", &p).param("replication_slots", "off");
    node3().run("start").expect(Status::Success);
    let worker = res.worker(&s).expect("the rebuild is recorded");
    // Halfway: some of the copy is there.
    wait_halfway(&s);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(worker),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    // A signal is delivered asynchronously: until then the worker runs.
    assert!(wait_until(Duration::from_secs(10), || {
        ocf::process::ProcInfo::read(worker)
            .unwrap()
            .is_none_or(|p| p.has_exited())
    }));
    // pg_basebackup dies with it (PR_SET_PDEATHSIG), but not its WAL
    // streaming child, which no signal of the kernel's reaches: stop and
    // start end it (below).
    let copying = || copying_into(&s);
    let failed = node3().run("monitor").expect(Status::ErrGeneric);
    assert!(
        failed.reason().contains("interrupted"),
        "{}",
        failed.reason()
    );
    // The old directory, untouched.
    assert!(s.pgdata.join("tusk-test-old").exists());
    assert!(s.pgdata.join("PG_VERSION").exists());
    assert!(kept_dirs(&s).is_empty());

    // Pacemaker recovers: stop, start; the rebuild starts over.
    node3().run("stop").expect(Status::Success);
    assert!(!building(&s).exists(), "stop removes the half-built copy");
    assert!(copying().is_empty(), "stop ends what still copied");
    node3().run("start").expect(Status::Success);
    rebuilt_whole(node3, &p, &s);
    node3().run("stop").expect(Status::Success);
}

/// A power loss halfway: every process of the copy gone at once, and the
/// record with /run (a tmpfs); the half-built copy is left on disk. The old
/// directory is untouched, a probe finds nothing running, and the next
/// start starts over and completes.
#[test]
fn a_node_crash_halfway_leaves_the_old_directory_and_the_next_start_completes() {
    let res = Resource::new();
    let p = primary(&res, 300_000);
    let s = standby_left_behind(&res, &p);
    let node3 = || auto(&res, &s, "node3", &p).param("replication_slots", "off");
    node3().run("start").expect(Status::Success);
    wait_halfway(&s);
    let copying = || copying_into(&s);
    let worker = res.worker(&s).expect("the rebuild is recorded");
    for pid in std::iter::once(worker).chain(copying().iter().map(|p| p.pid)) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    assert!(wait_until(Duration::from_secs(10), || copying().is_empty()
        && ocf::process::ProcInfo::read(worker)
            .unwrap()
            .is_none_or(|p| p.has_exited())));
    std::fs::remove_dir_all(res.run_dir()).unwrap();
    assert!(building(&s).exists(), "the half-built copy stays on disk");

    node3()
        .env("OCF_RESKEY_CRM_meta_interval", "0")
        .run("monitor")
        .expect(Status::NotRunning);
    assert!(s.pgdata.join("tusk-test-old").exists());
    node3().run("start").expect(Status::Success);
    rebuilt_whole(node3, &p, &s);
    node3().run("stop").expect(Status::Success);
}

#[test]
fn stop_during_a_rebuild_ends_it_and_removes_the_half_built_copy() {
    let res = Resource::new();
    let p = primary(&res, 300_000);
    let s = standby_left_behind(&res, &p);
    let node3 = || auto(&res, &s, "node3", &p).param("replication_slots", "off");
    node3().run("start").expect(Status::Success);
    let worker = res.worker(&s).expect("the rebuild is recorded");
    assert!(wait_until(Duration::from_secs(60), || building(&s).exists()));
    let stopped = node3().run("stop").expect(Status::Success);
    assert!(stopped.took < Duration::from_secs(20), "{:?}", stopped.took);
    assert!(
        ocf::process::ProcInfo::read(worker)
            .unwrap()
            .is_none_or(|p| p.has_exited()),
        "the worker still runs"
    );
    assert!(!building(&s).exists());
    assert!(s.pgdata.join("tusk-test-old").exists());
    assert!(kept_dirs(&s).is_empty());
    assert!(res.worker(&s).is_none(), "the record is gone");
    node3().run("monitor").expect(Status::NotRunning);
}

#[test]
fn a_crashed_former_primary_on_the_primarys_own_timeline_is_never_rebuilt() {
    let res = Resource::new();
    let p = primary(&res, 1_000);
    let standby = |node: &str| {
        let s = p.standby("basebackup");
        agent(&res, &s, node, &p)
            .run("start")
            .expect(Status::Success);
        assert!(wait_until(Duration::from_secs(20), || streaming(&p, node)));
        s
    };
    let a = standby("node2");
    let b = standby("node3");
    // Two promotions from the same switchpoint: both on timeline 3.
    agent(&res, &p, "node1", &p)
        .run("stop")
        .expect(Status::Success);
    agent(&res, &a, "node2", &p)
        .run("promote")
        .expect(Status::Success);
    agent(&res, &b, "node3", &p)
        .run("promote")
        .expect(Status::Success);
    // node2 acknowledges a commit nobody else has, and crashes.
    a.psql("INSERT INTO t VALUES ('only on node2')");
    a.crash();
    let refused = auto(&res, &a, "node2", &b)
        .run("start")
        .expect(Status::ErrGeneric);
    assert!(
        refused.reason().contains("cannot rebuild") && refused.reason().contains("timeline 3"),
        "{}",
        refused.reason()
    );
    assert!(res.worker(&a).is_none(), "no rebuild started");
    assert!(!building(&a).exists());
    assert!(a.processes().is_empty());
    // Its data is still there for a person to save.
    assert!(a.pgdata.join("PG_VERSION").exists());
    assert!(kept_dirs(&a).is_empty());
}

#[test]
fn a_running_standby_the_primary_left_behind_fails_its_monitor_and_is_rebuilt_at_restart() {
    let res = Resource::new();
    let p = primary(&res, 1_000);
    let s = standby_left_behind(&res, &p);
    let node3 = |policy: &str| {
        agent(&res, &s, "node3", &p)
            .param("replication_slots", "off")
            .param("rebuild", policy)
            .param("max_receiver_silence", "1")
    };
    // Started under rebuild=off: it runs, and cannot stream.
    node3("off").run("start").expect(Status::Success);
    assert!(!wait_until(Duration::from_secs(3), || streaming(
        &p, "node3"
    )));
    // The first monitor notes when the silence began.
    node3("off").run("monitor").expect(Status::Success);
    std::thread::sleep(Duration::from_millis(1_500));
    let degraded = node3("off").run("monitor").expect(Status::Degraded);
    assert!(
        degraded.reason().contains("silent"),
        "{}",
        degraded.reason()
    );
    // Under auto, the monitor tells why, as a failure Pacemaker recovers.
    let failed = node3("auto").run("monitor").expect(Status::ErrGeneric);
    assert!(
        failed.reason().contains("no longer has WAL segment"),
        "{}",
        failed.reason()
    );
    node3("auto").run("stop").expect(Status::Success);
    node3("auto").run("start").expect(Status::Success);
    monitor_until_streaming(|| node3("auto"), Duration::from_secs(120));
    assert!(streaming(&p, "node3"));
    node3("auto").run("stop").expect(Status::Success);
}

#[test]
fn a_former_primary_whose_rewind_was_interrupted_is_rebuilt_behind_a_newer_timeline() {
    let res = Resource::new();
    let p = primary(&res, 1_000);
    let s = p.standby("basebackup");
    agent(&res, &s, "node2", &p)
        .run("start")
        .expect(Status::Success);
    assert!(wait_until(Duration::from_secs(20), || streaming(
        &p, "node2"
    )));
    // node1 (timeline 2) crashes; node2 is promoted to timeline 3.
    p.crash();
    agent(&res, &s, "node2", &s)
        .run("promote")
        .expect(Status::Success);
    s.psql("INSERT INTO t VALUES ('on node2')");
    // A rewind of node1 was cut short (its record is what pg_rewind leaves
    // when killed: see promotable.rs).
    let marker = tusk_postgresql::rewind::RewindMarker::new(&res.name, &p.pgdata);
    marker.begin(&p.pgdata, "test").unwrap();
    let node1 = || auto(&res, &p, "node1", &s);
    // Under rebuild=off, start refuses, naming the record.
    agent(&res, &p, "node1", &s)
        .run("start")
        .expect(Status::ErrGeneric);
    node1().run("start").expect(Status::Success);
    monitor_until_streaming(node1, Duration::from_secs(120));
    assert!(streaming(&s, "node1"));
    assert_eq!(p.psql("SELECT count(*) FROM t WHERE v = 'on node2'"), "1");
    assert_eq!(marker.found(), None, "the whole copy replaced the record");
    assert_eq!(kept_dirs(&p).len(), 1, "the old directory is kept");
    node1().run("stop").expect(Status::Success);
}

/// Figures, not a check: `cargo nextest run -p tusk-postgresql --test
/// rebuild --run-ignored only --no-capture figures`. A rebuild of a
/// pgbench database (scale TUSK_BENCH_SCALE, 20 by default) beside a plain
/// pg_basebackup of the same database, then the same rebuild while pgbench
/// writes on the primary, with its latency.
#[test]
#[ignore]
fn figures_a_rebuild_beside_a_plain_pg_basebackup() {
    let scale: u32 = std::env::var("TUSK_BENCH_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let res = Resource::new();
    let p = primary(&res, 0);
    let pgbench = |args: &[&str]| {
        let out = std::process::Command::new("runuser")
            .args(["-u", "postgres", "--", "pgbench", "-h"])
            .arg(&p.socketdir)
            .args(["-p", "5432"])
            .args(args)
            .arg("postgres")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    pgbench(&["-i", "-q", "-s", &scale.to_string()]);
    p.psql("CHECKPOINT");
    let bytes: u64 = p
        .psql("SELECT sum(pg_database_size(oid)) FROM pg_database")
        .parse()
        .unwrap();
    let mb = bytes as f64 / (1 << 20) as f64;
    eprintln!("pgbench -i -s {scale}: databases {mb:.0} MB");

    let plain = Instance::empty(AGENT);
    let t = Instant::now();
    let out = std::process::Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(Path::new(tusk_testkit::BINDIR).join("pg_basebackup"))
        .args([
            "-U", "postgres", "-p", "5432", "-X", "stream", "-c", "fast", "-h",
        ])
        .arg(&p.socketdir)
        .arg("-D")
        .arg(&plain.pgdata)
        .output()
        .unwrap();
    assert!(out.status.success());
    let plain_secs = t.elapsed().as_secs_f64();
    eprintln!(
        "plain pg_basebackup: {plain_secs:.1}s, {:.0} MB/s",
        mb / plain_secs
    );
    // The same copy started by the agent (what a person would do after
    // a plain pg_basebackup), for the share of the standby's own start.
    let started = agent(&res, &plain, "node4", &p)
        .run("start")
        .expect(Status::Success);
    eprintln!(
        "  the agent's start of that copy: {:.1}s",
        started.took.as_secs_f64()
    );
    agent(&res, &plain, "node4", &p)
        .run("stop")
        .expect(Status::Success);
    drop(plain);

    let rebuild = |node: &str| {
        let s = Instance::empty(AGENT);
        let t = Instant::now();
        let start = auto(&res, &s, node, &p)
            .run("start")
            .expect(Status::Success);
        monitor_until_streaming(|| auto(&res, &s, node, &p), Duration::from_secs(600));
        let secs = t.elapsed().as_secs_f64();
        // What the worker said, with its own times.
        let log = std::fs::read_to_string(res.rebuild(&s).log_path()).unwrap_or_default();
        for l in log
            .lines()
            .filter(|l| l.contains("copied") || l.contains("rebuilt"))
        {
            eprintln!("  {l}");
        }
        let _ = std::fs::remove_file(res.rebuild(&s).log_path());
        auto(&res, &s, node, &p).run("stop").expect(Status::Success);
        (start.took.as_secs_f64(), secs)
    };
    let (start, secs) = rebuild("node2");
    eprintln!(
        "rebuild=auto: start returned in {start:.2}s, streaming after {secs:.1}s \
         ({:.0} MB/s, monitors every 200 ms)",
        mb / secs
    );

    let idle = pgbench(&["-n", "-c", "2", "-T", "12", "-N"]);
    let line = |text: &str, what: &str| {
        text.lines()
            .find(|l| l.starts_with(what))
            .unwrap_or("?")
            .to_string()
    };
    eprintln!(
        "pgbench -N -c 2 alone: {}; {}",
        line(&idle, "latency average"),
        line(&idle, "tps")
    );
    let writer = {
        let socket = p.socketdir.clone();
        std::thread::spawn(move || {
            let out = std::process::Command::new("runuser")
                .args(["-u", "postgres", "--", "pgbench", "-h"])
                .arg(&socket)
                .args(["-p", "5432", "-n", "-c", "2", "-T", "12", "-P", "1", "-N"])
                .arg("postgres")
                .output()
                .unwrap();
            let progress = String::from_utf8_lossy(&out.stderr).into_owned();
            for l in progress.lines().filter(|l| l.starts_with("progress")) {
                eprintln!("  {l}");
            }
            String::from_utf8_lossy(&out.stdout).into_owned()
        })
    };
    let (start, secs) = rebuild("node3");
    let during = writer.join().unwrap();
    eprintln!(
        "rebuild=auto under pgbench: start {start:.2}s, streaming after {secs:.1}s; pgbench \
         during: {}; {}",
        line(&during, "latency average"),
        line(&during, "tps")
    );
}

#[test]
fn a_standby_whose_slot_lost_its_wal_is_rebuilt_through_a_new_slot() {
    let res = Resource::new();
    let p = primary(&res, 1_000);
    p.psql("ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'");
    p.psql("SELECT pg_reload_conf()");
    let s = p.standby("basebackup");
    let node2 = || auto(&res, &s, "node2", &p);
    node2().run("start").expect(Status::Success);
    assert!(wait_until(Duration::from_secs(20), || streaming(
        &p, "node2"
    )));
    node2().run("stop").expect(Status::Success);
    write_past_retention(&p);
    let status =
        || p.psql("SELECT wal_status FROM pg_replication_slots WHERE slot_name = 'tusk_node2'");
    assert_eq!(status(), "lost", "the test wrote too little WAL");
    let started = node2().run("start").expect(Status::Success);
    assert!(
        started.stderr.contains("slot tusk_node2 lost"),
        "{}",
        started.stderr
    );
    monitor_until_streaming(node2, Duration::from_secs(120));
    assert!(wait_until(Duration::from_secs(20), || streaming(
        &p, "node2"
    )));
    assert_ne!(status(), "lost");
    assert_eq!(
        p.psql("SELECT active FROM pg_replication_slots WHERE slot_name = 'tusk_node2'"),
        "t"
    );
    node2().run("stop").expect(Status::Success);
}

#[test]
fn an_empty_node_started_before_any_primary_waits_for_one() {
    let res = Resource::new();
    let p = Instance::new(AGENT);
    let s = Instance::empty(AGENT);
    let node2 = || auto(&res, &s, "node2", &p);
    // Nobody answers at primary_host yet: no failure (which Pacemaker
    // would answer by banning the node), a worker that waits.
    node2().run("start").expect(Status::Success);
    let waiting = node2().run("monitor").expect(Status::Degraded);
    assert!(
        waiting.reason().contains("asking the primary"),
        "{}",
        waiting.reason()
    );
    // The primary comes.
    agent(&res, &p, "node1", &p)
        .run("start")
        .expect(Status::Success);
    agent(&res, &p, "node1", &p)
        .run("promote")
        .expect(Status::Success);
    monitor_until_streaming(node2, Duration::from_secs(120));
    assert!(wait_until(Duration::from_secs(20), || streaming(
        &p, "node2"
    )));
    node2().run("stop").expect(Status::Success);
}

#[test]
fn a_copy_cut_short_by_the_primarys_loss_is_made_again_from_the_next_primary() {
    let res = Resource::new();
    let p = primary(&res, 300_000);
    let s = Instance::empty(AGENT);
    let node2 = || auto(&res, &s, "node2", &p);
    node2().run("start").expect(Status::Success);
    assert!(
        wait_until(Duration::from_secs(60), || {
            tusk_postgresql::rebuild::dir_size(&building(&s)) > 20 << 20
        }),
        "the copy did not grow"
    );
    // The primary goes away halfway, and comes back promoted again.
    agent(&res, &p, "node1", &p)
        .run("stop")
        .expect(Status::Success);
    std::thread::sleep(Duration::from_secs(1));
    let meanwhile = node2().run("monitor").expect(Status::Degraded);
    assert!(
        meanwhile.reason().contains("rebuilding"),
        "{}",
        meanwhile.reason()
    );
    agent(&res, &p, "node1", &p)
        .run("start")
        .expect(Status::Success);
    agent(&res, &p, "node1", &p)
        .run("promote")
        .expect(Status::Success);
    // No failure on the way: the worker made the copy again.
    monitor_until_streaming(node2, Duration::from_secs(180));
    assert!(wait_until(Duration::from_secs(20), || streaming(
        &p, "node2"
    )));
    assert_eq!(s.psql("SELECT count(*) FROM big"), "300000");
    let log = std::fs::read_to_string(res.rebuild(&s).log_path()).unwrap();
    assert!(log.contains("copy 1 of 3 failed"), "{log}");
    node2().run("stop").expect(Status::Success);
}
