//! The agent as a promotable clone's instance, against real PostgreSQL 15
//! servers on this host: a primary and a standby that reach each other by
//! unix socket (primary_host may name a socket directory). Outside a
//! cluster the node attributes cannot be written; the agent says so and
//! goes on, which these tests also show.

use ocf::Status;
use tusk_testkit::{append, wait_until, Agent, Instance};

use std::time::Duration;

const AGENT: &str = env!("CARGO_BIN_EXE_postgresql");

/// The resource the agent runs as: `pg`, or one of this test's own (see
/// [`TestCluster`]).
static RESOURCE: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// What the agent keeps about a resource outside the test's directories
/// (its cache in /run/tusk, its state in /var/lib/tusk), for a resource of
/// this test alone, removed when the test ends. nextest runs each test in
/// a process of its own: the resource is named after it.
struct TestCluster {
    dirs: Vec<std::path::PathBuf>,
}

impl TestCluster {
    /// A cluster of `nodes`, as `crm_node -l` would list them, cached
    /// where the agent keeps the list (this host runs no cluster).
    fn of(nodes: &[&str]) -> TestCluster {
        let name = RESOURCE.get_or_init(|| format!("pgtest{}", std::process::id()));
        let cache = std::path::Path::new("/run/tusk").join(name);
        std::fs::create_dir_all(&cache).unwrap();
        std::fs::write(cache.join("cluster-nodes"), nodes.join("\n")).unwrap();
        TestCluster {
            dirs: vec![cache, std::path::Path::new("/var/lib/tusk").join(name)],
        }
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for dir in &self.dirs {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// The agent for `pg` as an instance of a promotable clone on `node`,
/// following the primary whose socket directory is `primary`. With
/// sync=off unless a test says otherwise: this host runs no cluster, so a
/// primary can never remove the other nodes' scores, and under
/// sync=available its commits would wait for a standby for ever (the
/// tests of synchronous replication say so).
fn agent(pg: &Instance, node: &str, primary: &Instance) -> Agent {
    pg.agent()
        .env("OCF_RESKEY_CRM_meta_promoted_max", "1")
        .env("OCF_RESKEY_CRM_meta_on_node", node)
        .env(
            "OCF_RESOURCE_INSTANCE",
            RESOURCE.get().map(String::as_str).unwrap_or("pg"),
        )
        .param("primary_host", &primary.socketdir)
        .param("repl_user", "postgres")
        .param("sync", "off")
}

/// A primary made by the agent itself: started as a standby (every
/// instance is), with no primary anywhere, then promoted.
fn primary() -> Instance {
    primary_with(|_| {})
}

/// The same, with `prepare` done to its fresh directory first.
fn primary_with(prepare: impl FnOnce(&Instance)) -> Instance {
    let pg = Instance::new(AGENT);
    prepare(&pg);
    // pg_rewind needs hint bits in the WAL (or data checksums), and the
    // former primary's WAL back to the last checkpoint before the fork.
    append(
        &pg.pgdata.join("postgresql.conf"),
        "wal_log_hints = on\nwal_keep_size = '64MB'\n",
    );
    agent(&pg, "node1", &pg)
        .run("start")
        .expect(Status::Success);
    assert_eq!(
        pg.psql("SELECT pg_is_in_recovery()"),
        "t",
        "started as a standby"
    );
    agent(&pg, "node1", &pg)
        .run("monitor")
        .expect(Status::Success);
    agent(&pg, "node1", &pg)
        .run("promote")
        .expect(Status::Success);
    assert_eq!(pg.psql("SELECT pg_is_in_recovery()"), "f");
    pg.psql("CREATE TABLE t (v text); INSERT INTO t VALUES ('before')");
    pg
}

/// A standby of `primary` on node2, started by the agent and streaming.
fn standby_of(primary: &Instance) -> Instance {
    standby_on(primary, "node2")
}

fn standby_on(primary: &Instance, node: &str) -> Instance {
    let s = primary.standby("basebackup");
    agent(&s, node, primary)
        .run("start")
        .expect(Status::Success);
    assert!(
        wait_until(Duration::from_secs(20), || primary
            .replication_state(node)
            .as_deref()
            == Some("streaming")),
        "{node} does not stream from the primary"
    );
    s
}

/// Until `standby` replayed everything `primary` wrote so far.
fn caught_up(primary: &Instance, standby: &Instance) {
    let at = primary.psql("SELECT pg_current_wal_lsn()");
    assert!(
        wait_until(Duration::from_secs(20), || standby
            .psql(&format!("SELECT pg_last_wal_replay_lsn() >= '{at}'"))
            == "t"),
        "the standby did not replay up to {at}"
    );
}

/// The timeline history file `timeline` of an instance, as lines.
fn history(pg: &Instance, timeline: u32) -> String {
    std::fs::read_to_string(pg.pgdata.join(format!("pg_wal/{timeline:08X}.history")))
        .unwrap_or_default()
}

#[test]
fn a_primary_is_made_by_promote_and_monitors_as_promoted() {
    let p = primary();
    agent(&p, "node1", &p)
        .run("monitor")
        .expect(Status::RunningPromoted);
    // Promote on a primary changes nothing.
    agent(&p, "node1", &p)
        .run("promote")
        .expect(Status::Success);
    agent(&p, "node1", &p).run("stop").expect(Status::Success);
    agent(&p, "node1", &p)
        .run("monitor")
        .expect(Status::NotRunning);
    assert!(!p.pgdata.join("postmaster.pid").exists());
}

#[test]
fn start_always_makes_a_standby_even_of_a_running_primary() {
    let p = primary();
    let pid = p.postmaster_pid();
    // Pacemaker believes it stopped (say, after a probe it did not see).
    agent(&p, "node1", &p).run("start").expect(Status::Success);
    assert_eq!(p.psql("SELECT pg_is_in_recovery()"), "t");
    assert_ne!(p.postmaster_pid(), pid, "restarted as a standby");
}

#[test]
fn the_primary_waits_for_a_streaming_standby_and_releases_no_commit_while_its_score_stays() {
    let _cluster = TestCluster::of(&["node1", "node2", "node3"]);
    let p = primary();
    let s = standby_of(&p);
    let agent = |pg, node, primary| agent(pg, node, primary).param("sync", "available");
    agent(&s, "node2", &p)
        .run("monitor")
        .expect(Status::Success);
    assert_eq!(p.psql("SHOW synchronous_standby_names"), "");
    agent(&p, "node1", &p)
        .run("monitor")
        .expect(Status::RunningPromoted);
    assert_eq!(
        p.psql("SHOW synchronous_standby_names"),
        r#"ANY 1 ("node2", "node3")"#,
        "sync=available with a standby"
    );
    assert!(wait_until(Duration::from_secs(10), || p.psql(
        "SELECT sync_state FROM pg_stat_replication WHERE application_name = 'node2'"
    ) == "quorum"));

    // node2 is lost. Falling back would acknowledge commits node2 lacks,
    // while node2 may still hold a promotion score, or while a majority
    // elsewhere may promote it: this host runs no cluster, neither quorum
    // nor the scores' removal can be had, so commits keep waiting and the
    // monitor says why (before: asynchronous at once, whatever the score).
    // The lab's pg_sync shows the fallback where both succeed.
    agent(&s, "node2", &p).run("stop").expect(Status::Success);
    let blocked = agent(&p, "node1", &p)
        .run("monitor")
        .expect(Status::DegradedPromoted);
    assert!(
        blocked.reason().contains("commits wait")
            && blocked.reason().contains("quorum unknown")
            && blocked.reason().contains("Connection to cluster failed"),
        "{}",
        blocked.reason()
    );
    assert_eq!(
        p.psql("SHOW synchronous_standby_names"),
        r#"ANY 1 ("node2", "node3")"#
    );
    commit_waits(&p);

    // sync=strict never falls back.
    agent(&p, "node1", &p)
        .param("sync", "strict")
        .run("monitor")
        .expect(Status::RunningPromoted);
    assert_eq!(
        p.psql("SHOW synchronous_standby_names"),
        r#"FIRST 1 ("node2", "node3")"#
    );
}

/// A commit on `p` waits for a synchronous standby (and is then cancelled).
fn commit_waits(p: &Instance) {
    let _writer = tusk_testkit::Guard(
        p.psql_command("INSERT INTO t VALUES ('waits')")
            .spawn()
            .unwrap(),
    );
    let waiting = "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'";
    assert!(wait_until(Duration::from_secs(10), || p.psql(waiting) == "1"));
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(p.psql(waiting), "1", "the commit was released");
    p.psql("SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE wait_event = 'SyncRep'");
    assert!(wait_until(Duration::from_secs(10), || p.psql(waiting) == "0"));
}

#[test]
fn only_the_clusters_nodes_release_commits_never_a_pg_receivewal() {
    let _cluster = TestCluster::of(&["node1", "node2", "node3"]);
    let p = primary();
    let s = standby_of(&p);
    let agent = |pg, node, primary| agent(pg, node, primary).param("sync", "available");
    // A WAL archive kept by pg_receivewal --synchronous, as backup tools
    // do: it acknowledges WAL like a synchronous standby.
    let archive = p.root().join("archive");
    std::fs::create_dir(&archive).unwrap();
    let pg = tusk_testkit::postgres_user();
    nix::unistd::chown(&archive, Some(pg.uid), Some(pg.gid)).unwrap();
    let _receiver = tusk_testkit::Guard(
        std::process::Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(format!("{}/pg_receivewal", tusk_testkit::BINDIR))
            .args(["--synchronous", "--no-loop", "-U", "postgres", "-D"])
            .arg(&archive)
            .arg("-h")
            .arg(&p.socketdir)
            .spawn()
            .unwrap(),
    );
    assert!(wait_until(Duration::from_secs(20), || p
        .replication_state("pg_receivewal")
        .as_deref()
        == Some("streaming")));
    let sync_state = |name: &str| {
        p.psql(&format!(
            "SELECT sync_state FROM pg_stat_replication WHERE application_name = '{name}'"
        ))
    };

    agent(&p, "node1", &p)
        .run("monitor")
        .expect(Status::RunningPromoted);
    // Before: '*', which pg_receivewal matches as well as node2.
    assert_eq!(
        p.psql("SHOW synchronous_standby_names"),
        r#"ANY 1 ("node2", "node3")"#
    );
    assert!(wait_until(Duration::from_secs(10), || sync_state("node2") == "quorum"));
    assert_eq!(sync_state("pg_receivewal"), "async");

    // node2 is lost: pg_receivewal is no standby, so the primary means to
    // fall back (it cannot here, with no cluster to remove node2's score
    // from: it says so), and commits never count on pg_receivewal.
    agent(&s, "node2", &p).run("stop").expect(Status::Success);
    let blocked = agent(&p, "node1", &p)
        .run("monitor")
        .expect(Status::DegradedPromoted);
    assert!(
        blocked.reason().contains("no standby streams"),
        "{}",
        blocked.reason()
    );

    // Under strict, a commit waits for a cluster node: pg_receivewal's
    // acknowledgement does not release it.
    agent(&p, "node1", &p)
        .param("sync", "strict")
        .run("monitor")
        .expect(Status::RunningPromoted);
    assert_eq!(sync_state("pg_receivewal"), "async");
    commit_waits(&p);
}

#[test]
fn a_planned_switchover_needs_no_rewind_and_the_old_primary_follows() {
    // A cluster, as any promotable clone runs in: the new primary keeps a
    // replication slot for the old one, which streams through it.
    let _cluster = TestCluster::of(&["node1", "node2"]);
    let p = primary();
    let s = standby_of(&p);
    p.psql("INSERT INTO t VALUES ('last on node1')");
    // The old primary restarts as a standby of node2's socket.
    agent(&p, "node1", &s).run("demote").expect(Status::Success);
    assert_eq!(p.psql("SELECT pg_is_in_recovery()"), "t");
    agent(&s, "node2", &p)
        .run("promote")
        .expect(Status::Success);
    assert_eq!(s.psql("SELECT pg_is_in_recovery()"), "f");
    assert_eq!(
        s.psql("SELECT count(*) FROM t WHERE v = 'last on node1'"),
        "1",
        "a row of the old primary is missing"
    );
    s.psql("INSERT INTO t VALUES ('first on node2')");
    assert!(
        wait_until(Duration::from_secs(30), || s
            .replication_state("node1")
            .as_deref()
            == Some("streaming")),
        "the demoted primary does not stream from the new one"
    );
    assert!(wait_until(Duration::from_secs(10), || p
        .psql("SELECT count(*) FROM t WHERE v = 'first on node2'")
        == "1"));
    agent(&p, "node1", &s)
        .run("monitor")
        .expect(Status::Success);
}

#[test]
fn a_diverged_former_primary_is_refused_under_rewind_off_and_rewound_under_auto() {
    let p = primary();
    let s = standby_of(&p);
    // Split brain: node2 is promoted while node1 still writes.
    agent(&s, "node2", &p)
        .run("promote")
        .expect(Status::Success);
    p.psql("INSERT INTO t VALUES ('lost on node1')");
    s.psql("INSERT INTO t VALUES ('kept on node2')");
    agent(&p, "node1", &s).run("stop").expect(Status::Success);

    let refused = agent(&p, "node1", &s).param("rewind", "off").run("start");
    let refused = refused.expect(Status::ErrGeneric);
    assert!(
        refused.reason().contains(&format!(
            "pg_rewind -D {} --source-server=",
            p.pgdata.display()
        )),
        "{}",
        refused.reason()
    );
    assert!(p.postmaster_pid().is_none(), "started despite rewind=off");

    agent(&p, "node1", &s).run("start").expect(Status::Success);
    assert!(
        wait_until(Duration::from_secs(30), || s
            .replication_state("node1")
            .as_deref()
            == Some("streaming")),
        "the rewound former primary does not stream from the new primary"
    );
    assert!(wait_until(Duration::from_secs(10), || p
        .psql("SELECT string_agg(v, ',' ORDER BY v) FROM t")
        == "before,kept on node2"));
}

#[test]
fn a_clone_set_up_against_the_election_is_refused_before_anything_starts() {
    let pg = Instance::new(AGENT);
    agent(&pg, "node1", &pg)
        .run("validate-all")
        .expect(Status::Success);
    for (name, value, why) in [
        ("OCF_RESKEY_CRM_meta_promoted_max", "2", "promoted-max is 2"),
        ("OCF_RESKEY_CRM_meta_notify", "false", "notify=true"),
    ] {
        for action in ["validate-all", "start"] {
            let out = agent(&pg, "node1", &pg)
                .env(name, value)
                .run(action)
                .expect(Status::ErrConfigured);
            assert!(out.reason().contains(why), "{action}: {}", out.reason());
        }
    }
    let long = "n".repeat(64);
    let out = agent(&pg, &long, &pg)
        .run("validate-all")
        .expect(Status::ErrConfigured);
    assert!(
        out.reason().contains("application_name"),
        "{}",
        out.reason()
    );
    assert_eq!(pg.postmaster_pid(), None, "nothing may have started");
}

#[test]
fn a_primary_that_answers_with_an_error_fails_the_start_instead_of_counting_as_absent() {
    let primary = primary();
    let standby = standby_of(&primary);
    agent(&standby, "node2", &primary)
        .run("stop")
        .expect(Status::Success);
    // The primary runs but refuses this role: it is there, so the standby
    // must not start unchecked (before, it started as if no primary ran).
    let out = agent(&standby, "node2", &primary)
        .param("repl_user", "tusk_no_such_role")
        .run("start")
        .expect(Status::ErrGeneric);
    assert!(
        out.reason().contains("did not answer the divergence check"),
        "{}",
        out.reason()
    );
    assert_eq!(standby.postmaster_pid(), None, "the standby must not run");
    // Nothing at primary_host at all: no primary, the standby starts.
    agent(&primary, "node1", &primary)
        .run("stop")
        .expect(Status::Success);
    agent(&standby, "node2", &primary)
        .run("start")
        .expect(Status::Success);
    agent(&standby, "node2", &primary)
        .run("stop")
        .expect(Status::Success);
}

/// pg_ctl start of a standby following `primary`, without the agent and its
/// checks: what any start did before the divergence check existed.
fn start_unchecked(pg: &Instance, node: &str, primary: &Instance) {
    let out = std::process::Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(format!("{}/pg_ctl", tusk_testkit::BINDIR))
        .args(["start", "-w", "-D"])
        .arg(&pg.pgdata)
        .arg("-l")
        .arg(&pg.logfile)
        .arg("-o")
        .arg(format!(
            "-k {} -c primary_conninfo='host={} user=postgres application_name={node}' \
             -c recovery_target_timeline=latest",
            pg.socketdir.display(),
            primary.socketdir.display()
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_standby_that_replayed_past_the_fork_point_is_rewound_not_started_stuck() {
    let p = primary();
    let a = standby_on(&p, "node2");
    let b = standby_on(&p, "node3");
    // node3 leaves; node2 replays on, and makes a restartpoint past where
    // node3 stopped.
    agent(&b, "node3", &p).run("stop").expect(Status::Success);
    p.psql("INSERT INTO t VALUES ('after node3 left'); CHECKPOINT");
    caught_up(&p, &a);
    agent(&a, "node2", &p).run("stop").expect(Status::Success);
    agent(&p, "node1", &p).run("stop").expect(Status::Success);
    // node3 is promoted: its timeline 2 forks before what node2 replayed.
    agent(&b, "node3", &p).run("start").expect(Status::Success);
    agent(&b, "node3", &p)
        .run("promote")
        .expect(Status::Success);
    b.psql("INSERT INTO t VALUES ('on node3')");

    // Before, a standby's end of WAL counted as 0: node2 started, and its
    // WAL receiver never streamed ("requested starting point ... is not in
    // this server's history").
    let refused = agent(&a, "node2", &b).param("rewind", "off").run("start");
    let refused = refused.expect(Status::ErrGeneric);
    assert!(
        refused.reason().contains("rewind=off: pg_rewind"),
        "{}",
        refused.reason()
    );
    assert!(
        refused.stderr.contains("past the primary's fork point"),
        "{}",
        refused.stderr
    );
    assert_eq!(a.postmaster_pid(), None);

    // Started without the check, its WAL receiver fetches the history of
    // timeline 2, which it cannot follow.
    start_unchecked(&a, "node2", &b);
    assert!(
        wait_until(Duration::from_secs(20), || !history(&a, 2).is_empty()),
        "the WAL receiver did not fetch the history of timeline 2"
    );
    assert_eq!(a.psql("SELECT count(*) FROM t WHERE v = 'on node3'"), "0");
    agent(&a, "node2", &b).run("stop").expect(Status::Success);
    // That history file is no proof that node2 is on timeline 2.
    let refused = agent(&a, "node2", &b).param("rewind", "off").run("start");
    refused.expect(Status::ErrGeneric);
    assert_eq!(a.postmaster_pid(), None);

    agent(&a, "node2", &b).run("start").expect(Status::Success);
    assert!(
        wait_until(Duration::from_secs(30), || b
            .replication_state("node2")
            .as_deref()
            == Some("streaming")),
        "the rewound standby does not stream from the new primary"
    );
    assert!(wait_until(Duration::from_secs(10), || a
        .psql("SELECT string_agg(v, ',' ORDER BY v) FROM t")
        == "before,on node3"));
}

#[test]
fn two_promotions_to_one_timeline_are_told_apart_and_a_clean_primary_ends_at_its_checkpoint() {
    let p = primary();
    let a = standby_on(&p, "node2");
    let b = standby_on(&p, "node3");
    // A clean stop: both standbys receive the shutdown checkpoint, and both
    // promotions fork from the end of that record, to timeline 3 (node1
    // is on 2: it became primary by promotion too).
    agent(&p, "node1", &p).run("stop").expect(Status::Success);
    agent(&a, "node2", &p)
        .run("promote")
        .expect(Status::Success);
    agent(&b, "node3", &p)
        .run("promote")
        .expect(Status::Success);
    assert_eq!(history(&a, 3), history(&b, 3));
    let fork = history(&a, 3).lines().last().unwrap().to_string();
    let switchpoint: tusk_postgresql::wal::Lsn =
        fork.split_whitespace().nth(1).unwrap().parse().unwrap();

    // Where node1's WAL ends, as pg_rewind counts it: exactly there.
    let user = ocf::OsUser::lookup("postgres").unwrap();
    let bindir = std::path::Path::new(tusk_testkit::BINDIR);
    let deadline = ocf::Deadline::after(Duration::from_secs(10));
    let control =
        tusk_postgresql::controldata::ControlData::read(&user, bindir, &p.pgdata, &deadline)
            .unwrap();
    let end = tusk_postgresql::wal_end::find(&user, bindir, &p.pgdata, &control, &deadline);
    assert_eq!((end.timeline, end.end), (2, Some(switchpoint)));
    assert!(end.was_primary);
    // So it follows either new primary without pg_rewind.
    agent(&p, "node1", &b)
        .param("rewind", "off")
        .run("start")
        .expect(Status::Success);

    // node2 writes as a primary on its timeline 3, then stops: the same
    // number and history file as node3's timeline 3, other WAL. pg_rewind
    // would find them "on the same timeline" and change nothing.
    a.psql("INSERT INTO t VALUES ('only on node2')");
    agent(&a, "node2", &a).run("stop").expect(Status::Success);
    let refused = agent(&a, "node2", &b)
        .run("start")
        .expect(Status::ErrGeneric);
    assert!(refused.reason().contains("rebuild"), "{}", refused.reason());
    assert_eq!(a.postmaster_pid(), None);
}

#[test]
fn a_crashed_standby_is_judged_by_where_its_wal_ends() {
    let p = primary();
    let a = standby_on(&p, "node2");
    let b = standby_on(&p, "node3");
    let c = standby_on(&p, "node4");
    // node4 crashes first, its WAL ending at a segment switch (pg_waldump
    // then finds the next segment missing), node3 later, after it replayed
    // more than node2 (stopped cleanly before) ever saw.
    p.psql("SELECT pg_switch_wal()");
    caught_up(&p, &c);
    c.crash();
    agent(&a, "node2", &p).run("stop").expect(Status::Success);
    p.psql("INSERT INTO t VALUES ('after node2 left')");
    caught_up(&p, &b);
    b.crash();
    agent(&p, "node1", &p).run("stop").expect(Status::Success);
    agent(&a, "node2", &p).run("start").expect(Status::Success);
    agent(&a, "node2", &p)
        .run("promote")
        .expect(Status::Success);

    // node3's WAL goes past node2's fork point: before, a crashed standby
    // counted as ending at 0 and started, stuck.
    let refused = agent(&b, "node3", &a).param("rewind", "off").run("start");
    let refused = refused.expect(Status::ErrGeneric);
    assert!(
        refused.stderr.contains("past the primary's fork point"),
        "{}",
        refused.stderr
    );
    assert_eq!(b.postmaster_pid(), None);
    // node4's does not: it follows without pg_rewind.
    agent(&c, "node4", &a)
        .param("rewind", "off")
        .run("start")
        .expect(Status::Success);
    assert!(
        wait_until(Duration::from_secs(30), || a
            .replication_state("node4")
            .as_deref()
            == Some("streaming")),
        "the crashed standby behind the fork does not stream"
    );
    agent(&b, "node3", &a).run("start").expect(Status::Success);
    assert!(
        wait_until(Duration::from_secs(30), || a
            .replication_state("node3")
            .as_deref()
            == Some("streaming")),
        "the rewound standby does not stream"
    );
}

/// The checkpointer of a running instance.
fn checkpointer(pg: &Instance) -> nix::unistd::Pid {
    use ocf::service::Service;
    let members = tusk_postgresql::postmaster::Postmaster::of(&pg.pgdata)
        .members()
        .unwrap();
    let found = members.iter().find(|p| {
        p.cmdline
            .first()
            .is_some_and(|c| c.to_string_lossy().contains("checkpointer"))
    });
    nix::unistd::Pid::from_raw(found.expect("a checkpointer").pid)
}

#[test]
fn a_promotion_whose_checkpoint_hangs_is_reported_as_the_success_it_is() {
    use nix::sys::signal::{kill, Signal};
    let p = primary();
    let s = standby_of(&p);
    agent(&p, "node1", &p).run("stop").expect(Status::Success);
    // A checkpointer that does not get to run: the promotion itself needs
    // none, the CHECKPOINT after it never finishes.
    let frozen = checkpointer(&s);
    kill(frozen, Signal::SIGSTOP).unwrap();
    let promoted = agent(&s, "node2", &p).timeout_ms(15_000).run("promote");
    kill(frozen, Signal::SIGCONT).unwrap();
    // Before, promote failed, and Pacemaker demoted the new primary.
    let promoted = promoted.expect(Status::Success);
    assert!(
        promoted
            .stderr
            .contains("promoted, but CHECKPOINT after the promotion"),
        "{}",
        promoted.stderr
    );
    assert_eq!(s.psql("SELECT pg_is_in_recovery()"), "f");
    // The checkpoint on the new timeline comes all the same.
    agent(&s, "node2", &p)
        .run("monitor")
        .expect(Status::RunningPromoted);
    assert!(wait_until(Duration::from_secs(20), || {
        s.psql(
        "SELECT timeline_id = ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int FROM pg_control_checkpoint()"
    ) == "t"
    }));
}

#[test]
fn an_interrupted_pg_rewind_is_never_run_again_on_the_half_rewritten_directory() {
    let p = primary();
    let s = standby_of(&p);
    agent(&s, "node2", &p)
        .run("promote")
        .expect(Status::Success);
    p.psql("INSERT INTO t VALUES ('lost on node1')");
    s.psql("INSERT INTO t VALUES ('kept on node2')");
    agent(&p, "node1", &s).run("stop").expect(Status::Success);

    // pg_rewind lists the source's files joined with pg_tablespace: a lock
    // on it holds pg_rewind until start's timeout kills it.
    let mut lock = s.psql_command(
        "BEGIN; LOCK TABLE pg_tablespace IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(120)",
    );
    let lock = tusk_testkit::Guard(lock.spawn().unwrap());
    assert!(wait_until(Duration::from_secs(10), || s.psql(
        "SELECT count(*) FROM pg_locks WHERE relation = 'pg_tablespace'::regclass AND granted"
    ) == "1"));
    let cut = agent(&p, "node1", &s)
        .timeout_ms(12_000)
        .run("start")
        .expect(Status::ErrGeneric);
    drop(lock);
    s.psql(
        "SELECT pg_terminate_backend(pid) FROM pg_locks \
         WHERE relation = 'pg_tablespace'::regclass AND granted",
    );
    assert!(
        cut.reason().contains("pg_rewind was interrupted"),
        "{}",
        cut.reason()
    );
    let marker = cut
        .reason()
        .split("then rm ")
        .nth(1)
        .unwrap()
        .trim()
        .to_string();
    assert!(std::path::Path::new(&marker).exists());
    let _cleanup = RemoveOnDrop(marker.clone().into());

    // Before, the next start ran pg_rewind again on whatever was left.
    let refused = agent(&p, "node1", &s)
        .run("start")
        .expect(Status::ErrGeneric);
    assert!(refused.reason().contains(&marker), "{}", refused.reason());
    assert!(
        refused.stderr.contains("Rebuild it from the primary"),
        "{}",
        refused.stderr
    );
    assert_eq!(p.postmaster_pid(), None);

    // The operator checked (here: nothing had been written) and removed it.
    std::fs::remove_file(&marker).unwrap();
    agent(&p, "node1", &s).run("start").expect(Status::Success);
    assert!(
        !std::path::Path::new(&marker).exists(),
        "a finished rewind leaves no marker"
    );
    assert!(wait_until(Duration::from_secs(30), || s
        .replication_state("node1")
        .as_deref()
        == Some("streaming")));
}

/// A file the agent keeps outside the test's directories, removed even
/// when the test fails.
struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn a_standby_settles_its_own_score_before_its_server_starts_never_after() {
    let p = primary();
    let s = p.standby("basebackup");
    let started = agent(&s, "node2", &p).run("start").expect(Status::Success);
    // This host runs no cluster: the agent's attempt shows in its log.
    // Once the server runs, its WAL receiver may connect and the primary
    // score it; a later deletion of node2's own would undo that (before,
    // it came after "started PostgreSQL").
    let deleted = started
        .stderr
        .find("--node node2 --delete")
        .expect("node2's score is deleted");
    let running = started.stderr.find("started PostgreSQL").unwrap();
    assert!(deleted < running, "{}", started.stderr);
}

#[test]
fn a_standby_whose_receiver_stopped_streaming_is_degraded_and_says_why() {
    let _cluster = TestCluster::of(&["node1", "node2"]);
    let p = primary();
    let s = standby_of(&p);
    let monitor = || {
        agent(&s, "node2", &p)
            .param("max_receiver_silence", "1")
            .run("monitor")
    };
    monitor().expect(Status::Success);

    // The primary refuses replication connections: it runs and answers,
    // but node2 cannot follow it.
    let hba = p.pgdata.join("pg_hba.conf");
    let allowed = std::fs::read_to_string(&hba).unwrap();
    std::fs::write(&hba, format!("local replication all reject\n{allowed}")).unwrap();
    p.psql("SELECT pg_reload_conf()");
    p.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_replication");
    assert!(wait_until(Duration::from_secs(10), || s.psql(
        "SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming'"
    ) == "0"));
    // The first monitor that sees it notes when; silent beyond the bound,
    // the standby is degraded (before: 0, as if it were a candidate).
    monitor().expect(Status::Success);
    std::thread::sleep(Duration::from_millis(2100));
    let degraded = monitor().expect(Status::Degraded);
    assert!(
        degraded.reason().contains("while a primary answers at"),
        "{}",
        degraded.reason()
    );

    // It streams again: healthy again.
    std::fs::write(&hba, allowed).unwrap();
    p.psql("SELECT pg_reload_conf()");
    assert!(wait_until(Duration::from_secs(20), || p
        .replication_state("node2")
        .as_deref()
        == Some("streaming")));
    monitor().expect(Status::Success);

    // No primary at all: the silence is its absence, and node2 stays a
    // candidate (it must be one for a failover to happen).
    agent(&p, "node1", &p).run("stop").expect(Status::Success);
    assert!(wait_until(Duration::from_secs(10), || s.psql(
        "SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming'"
    ) == "0"));
    monitor().expect(Status::Success);
    std::thread::sleep(Duration::from_millis(2100));
    let degraded = monitor().expect(Status::Degraded);
    assert!(
        degraded.reason().contains("no primary answers")
            && degraded.reason().contains("still a candidate"),
        "{}",
        degraded.reason()
    );
}

#[test]
fn a_new_primary_makes_commits_wait_for_a_standby_until_its_monitor_releases_them() {
    let _cluster = TestCluster::of(&["node1", "node2"]);
    let p = primary();
    let s = standby_of(&p);
    // A failover: node1 is gone, node2 is promoted under sync=available.
    agent(&p, "node1", &p).run("stop").expect(Status::Success);
    agent(&s, "node2", &p)
        .param("sync", "available")
        .run("promote")
        .expect(Status::Success);
    // Before, commits went asynchronous at once, while the other nodes
    // still held the scores the old primary gave them: one of them,
    // promoted next, would lack what this primary acknowledged alone.
    assert_eq!(
        s.psql("SHOW synchronous_standby_names"),
        r#"ANY 1 ("node1")"#
    );
    commit_waits(&s);
    // Its monitor, right after: within the grace after the promotion it
    // waits for a standby before it would release anything.
    let monitor = agent(&s, "node2", &p)
        .param("sync", "available")
        .timeout_ms(6_000)
        .run("monitor");
    assert!(
        monitor.took >= Duration::from_millis(2_000),
        "did not wait for a standby: {:?}",
        monitor.took
    );
}

/// The replication slot `name` on `pg`: whether a walsender uses it, if
/// it exists.
fn slot_active(pg: &Instance, name: &str) -> Option<String> {
    let active = pg.psql(&format!(
        "SELECT active FROM pg_replication_slots WHERE slot_name = '{name}'"
    ));
    (!active.is_empty()).then_some(active)
}

/// Writes on `p` until the WAL a standby stopped at is gone from its
/// pg_wal (nothing else keeps it: wal_keep_size 0).
fn write_past_retention(p: &Instance) {
    p.psql("ALTER SYSTEM SET wal_keep_size = 0");
    p.psql("SELECT pg_reload_conf()");
    for _ in 0..4 {
        p.psql("INSERT INTO t SELECT 'filler' FROM generate_series(1, 1000)");
        p.psql("SELECT pg_switch_wal()");
        p.psql("CHECKPOINT");
    }
}

#[test]
fn a_standby_down_for_a_while_catches_up_through_its_slot_and_without_one_cannot() {
    let p = primary();
    // Without slots: the WAL it needs is gone when it comes back.
    let without = p.standby("basebackup");
    let off = |s: &Instance| agent(s, "node3", &p).param("replication_slots", "off");
    off(&without).run("start").expect(Status::Success);
    assert!(wait_until(Duration::from_secs(20), || p
        .replication_state("node3")
        .as_deref()
        == Some("streaming")));
    assert_eq!(slot_active(&p, "tusk_node3"), None, "no slot under off");
    off(&without).run("stop").expect(Status::Success);
    write_past_retention(&p);
    off(&without).run("start").expect(Status::Success);
    assert!(
        !wait_until(Duration::from_secs(10), || p
            .replication_state("node3")
            .as_deref()
            == Some("streaming")),
        "a standby without a slot caught up: the test wrote too little WAL"
    );
    off(&without).run("stop").expect(Status::Success);

    // With its slot (the default): the primary kept what it needs.
    let with = standby_on(&p, "node2");
    assert_eq!(slot_active(&p, "tusk_node2").as_deref(), Some("t"));
    agent(&with, "node2", &p)
        .run("stop")
        .expect(Status::Success);
    write_past_retention(&p);
    agent(&with, "node2", &p)
        .run("start")
        .expect(Status::Success);
    assert!(
        wait_until(Duration::from_secs(20), || p
            .replication_state("node2")
            .as_deref()
            == Some("streaming")),
        "the standby did not catch up through its slot"
    );
    caught_up(&p, &with);
}

#[test]
fn the_primary_keeps_a_slot_for_each_other_cluster_node_and_drops_those_of_nodes_gone() {
    let cluster = TestCluster::of(&["node1", "node2", "node3"]);
    let p = primary();
    p.psql("SELECT pg_create_physical_replication_slot('tusk_node9')");
    p.psql("SELECT pg_create_physical_replication_slot('backup_tool')");
    agent(&p, "node1", &p)
        .run("monitor")
        .expect(Status::RunningPromoted);
    let slots =
        || p.psql("SELECT string_agg(slot_name, ' ' ORDER BY slot_name) FROM pg_replication_slots");
    // None for itself, none kept for a node the cluster does not have,
    // and nobody else's touched.
    assert_eq!(slots(), "backup_tool tusk_node2 tusk_node3");

    // node3 leaves the cluster.
    drop(cluster);
    let _cluster = TestCluster::of(&["node1", "node2"]);
    agent(&p, "node1", &p)
        .run("monitor")
        .expect(Status::RunningPromoted);
    assert_eq!(slots(), "backup_tool tusk_node2");
}

#[test]
fn a_standby_keeps_its_peers_slots_so_that_once_promoted_they_are_there() {
    let _cluster = TestCluster::of(&["node1", "node2", "node3"]);
    let p = primary();
    let s = standby_of(&p);
    agent(&s, "node2", &p)
        .run("monitor")
        .expect(Status::Success);
    let on_standby =
        s.psql("SELECT string_agg(slot_name, ' ' ORDER BY slot_name) FROM pg_replication_slots");
    assert_eq!(on_standby, "tusk_node1 tusk_node3");
    // Advanced as it replays: a segment of WAL later, not holding on to
    // where they were created.
    let restart = |name: &str| {
        s.psql(&format!(
            "SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = '{name}'"
        ))
    };
    let before = restart("tusk_node3");
    for _ in 0..2 {
        p.psql("INSERT INTO t SELECT 'filler' FROM generate_series(1, 1000)");
        p.psql("SELECT pg_switch_wal()");
    }
    caught_up(&p, &s);
    agent(&s, "node2", &p)
        .run("monitor")
        .expect(Status::Success);
    let after = restart("tusk_node3");
    let newer = s.psql(&format!("SELECT '{after}'::pg_lsn > '{before}'::pg_lsn"));
    assert_eq!(newer, "t", "{before} -> {after}");
}

/// A private network for this test's thread and everything it starts (a
/// fresh network namespace with its loopback up and nothing else), so a
/// server may listen on 127.0.0.1:5432 without meeting any other.
fn private_loopback() {
    // SAFETY: unshare changes this thread's namespaces only.
    let rc = unsafe { nix::libc::unshare(nix::libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "unshare: {}", std::io::Error::last_os_error());
    let up = std::process::Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status()
        .unwrap();
    assert!(up.success());
}

/// A certificate authority and, signed by it, a server certificate for
/// 127.0.0.1, in `dir`: (ca.crt, server.crt, server.key).
fn certificates(dir: &std::path::Path, ca_name: &str) -> [std::path::PathBuf; 3] {
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let subject = format!("/CN={ca_name}");
    openssl(
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-days", "2", "-subj", &subject, "-keyout", "ca.key", "-out", "ca.crt",
            ],
        ]
        .concat(),
    );
    openssl(
        &[
            &["req"][..],
            &ec,
            &[
                "-subj",
                "/CN=127.0.0.1",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
            ],
        ]
        .concat(),
    );
    std::fs::write(dir.join("san.ext"), "subjectAltName = IP:127.0.0.1\n").unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "server.crt",
    ]);
    ["ca.crt", "server.crt", "server.key"].map(|f| dir.join(f))
}

#[test]
fn a_primary_that_takes_only_tls_is_asked_with_the_sslmode_the_standby_streams_with() {
    private_loopback();
    let p = primary_with(|pg| {
        let [_, crt, key] = certificates(pg.root(), "tusk test CA");
        pg.write_owned(
            &pg.pgdata.join("server.crt"),
            &std::fs::read_to_string(crt).unwrap(),
        );
        pg.write_owned(
            &pg.pgdata.join("server.key"),
            &std::fs::read_to_string(key).unwrap(),
        );
        append(
            &pg.pgdata.join("postgresql.conf"),
            "listen_addresses = '127.0.0.1'\nssl = on\n",
        );
        // TLS or nothing over TCP: no `host` line takes a clear session.
        let hba = pg.pgdata.join("pg_hba.conf");
        let local: String = std::fs::read_to_string(&hba)
            .unwrap()
            .lines()
            .filter(|l| l.starts_with("local"))
            .map(|l| format!("{l}\n"))
            .collect();
        pg.write_owned(
            &hba,
            &format!(
                "hostssl all postgres 127.0.0.1/32 trust\n\
                 hostssl replication postgres 127.0.0.1/32 trust\n{local}"
            ),
        );
    });
    let s = p.standby("basebackup");
    // Its copy of the primary's settings would have it listen where the
    // primary does.
    append(&s.pgdata.join("postgresql.conf"), "listen_addresses = ''\n");
    let over_tcp = |mode: &str| {
        agent(&s, "node2", &p)
            .param("primary_host", "127.0.0.1")
            .param("sslmode", mode)
    };

    // In clear, the primary refuses: the start fails with its reason and
    // nothing starts (before: the agent always asked in clear, whatever
    // the walreceiver would use, so no sslmode could make this start).
    let refused = over_tcp("disable").run("start").expect(Status::ErrGeneric);
    assert!(
        refused.reason().contains("no encryption"),
        "{}",
        refused.reason()
    );
    assert_eq!(s.postmaster_pid(), None);

    // Verified against another authority: refused by this side.
    let other = tempfile::tempdir().unwrap();
    let [wrong_ca, ..] = certificates(other.path(), "another CA");
    let unverified = over_tcp("verify-full")
        .param("sslrootcert", &wrong_ca)
        .run("start")
        .expect(Status::ErrGeneric);
    assert!(
        unverified.reason().contains("certificate"),
        "{}",
        unverified.reason()
    );
    assert_eq!(s.postmaster_pid(), None);

    // verify-full with the primary's authority: the agent asks over TLS,
    // and the standby streams over TLS with the same settings.
    let ca = p.root().join("ca.crt");
    over_tcp("verify-full")
        .param("sslrootcert", &ca)
        .run("start")
        .expect(Status::Success);
    assert!(wait_until(Duration::from_secs(20), || p.psql(
        "SELECT count(*) FROM pg_stat_replication JOIN pg_stat_ssl USING (pid) \
         WHERE application_name = 'node2' AND ssl"
    ) == "1"));

    // The verifying modes need the authority.
    let missing = over_tcp("verify-ca")
        .run("validate-all")
        .expect(Status::ErrConfigured);
    assert!(
        missing.reason().contains("sslrootcert"),
        "{}",
        missing.reason()
    );
}

#[test]
fn a_primary_that_crashed_never_gives_itself_a_promotion_score_at_start() {
    let p = primary();
    p.crash();
    // Nobody answers at primary_host (it was this node): before, the start
    // gave it 100, though a newer primary may exist that it knows nothing of.
    let started = agent(&p, "node1", &p).run("start").expect(Status::Success);
    assert!(!started.stderr.contains("--update="), "{}", started.stderr);
    assert!(
        started.stderr.contains("--node node1 --delete"),
        "{}",
        started.stderr
    );
    assert_eq!(p.psql("SELECT pg_is_in_recovery()"), "t");
    agent(&p, "node1", &p).run("stop").expect(Status::Success);
}

/// A stand-in for corosync's `libquorum.so.5` (this host runs no corosync;
/// the lab's nodes run the real one): the agent loads it by soname, so
/// `LD_LIBRARY_PATH` puts this one first. It answers "quorate" when the
/// file `quorate` beside it holds `1`, "not quorate" otherwise.
struct FakeQuorum {
    dir: tempfile::TempDir,
}

impl FakeQuorum {
    fn new() -> FakeQuorum {
        let dir = tempfile::tempdir().unwrap();
        let answer = dir.path().join("quorate");
        let source = dir.path().join("quorum.c");
        std::fs::write(
            &source,
            format!(
                r#"#include <stdint.h>
#include <stdio.h>
int quorum_initialize(uint64_t *h, void *callbacks, uint32_t *type) {{ *h = 7; *type = 1; return 1; }}
int quorum_getquorate(uint64_t h, int *quorate) {{
    FILE *f = fopen("{}", "r");
    int c = f ? fgetc(f) : '0';
    if (f) fclose(f);
    *quorate = c == '1';
    return h == 7 ? 1 : 9;
}}
int quorum_finalize(uint64_t h) {{ return 1; }}
"#,
                answer.display()
            ),
        )
        .unwrap();
        let built = std::process::Command::new("cc")
            .args(["-shared", "-fPIC", "-o"])
            .arg(dir.path().join("libquorum.so.5"))
            .arg(&source)
            .status()
            .unwrap();
        assert!(built.success(), "cc could not build the stand-in");
        let fake = FakeQuorum { dir };
        fake.set(true);
        fake
    }

    fn set(&self, quorate: bool) {
        std::fs::write(
            self.dir.path().join("quorate"),
            if quorate { "1" } else { "0" },
        )
        .unwrap();
    }

    fn path(&self) -> &str {
        self.dir.path().to_str().unwrap()
    }
}

#[test]
fn a_primary_without_quorum_acknowledges_no_commit_even_with_a_standby_and_sync_off() {
    let _cluster = TestCluster::of(&["node1", "node2", "node3"]);
    let quorum = FakeQuorum::new();
    let p = primary();
    let s = standby_of(&p);
    let agent = |pg, node, primary| agent(pg, node, primary).env("LD_LIBRARY_PATH", quorum.path());
    agent(&p, "node1", &p)
        .run("monitor")
        .expect(Status::RunningPromoted);
    assert_eq!(p.psql("SHOW synchronous_standby_names"), "", "sync=off");

    // Quorum lost: a standby streams on this side, and sync=off never
    // waits for one; the primary still holds every commit, in one log line.
    quorum.set(false);
    let held = agent(&p, "node1", &p)
        .run("monitor")
        .expect(Status::DegradedPromoted);
    assert!(held.reason().contains("no quorum"), "{}", held.reason());
    let said = |o: &ocf::testing::Outcome| {
        o.stderr
            .lines()
            .filter(|l| l.contains("no commit is acknowledged"))
            .count()
    };
    assert_eq!(said(&held), 1, "{}", held.stderr);
    let hold = p.psql("SHOW synchronous_standby_names");
    assert!(
        hold.starts_with("FIRST 1 (") && hold.contains("no quorum"),
        "{hold}"
    );
    assert_eq!(
        p.replication_state("node2").as_deref(),
        Some("streaming"),
        "the standby streams on, and releases nothing"
    );
    commit_waits(&p);
    let again = agent(&p, "node1", &p)
        .run("monitor")
        .expect(Status::DegradedPromoted);
    assert_eq!(said(&again), 0, "said once: {}", again.stderr);

    // Quorum unknown (the real library, and no corosync here): the hold
    // stays until quorum is seen again.
    let unknown = agent_without_quorum_library(&p)
        .run("monitor")
        .expect(Status::DegradedPromoted);
    assert!(
        unknown.reason().contains("quorum unknown"),
        "{}",
        unknown.reason()
    );
    assert_eq!(p.psql("SHOW synchronous_standby_names"), hold);

    // Quorum back, but this host runs no Pacemaker: whether another node
    // was promoted meanwhile cannot be told (crm_mon fails), so the hold
    // stays (the lab's pg_quorum_ignore shows the release).
    let waiting = p
        .psql_command("INSERT INTO t VALUES ('waited')")
        .spawn()
        .unwrap();
    let mut waiting = tusk_testkit::Guard(waiting);
    assert!(wait_until(Duration::from_secs(10), || p.psql(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'"
    ) == "1"));
    quorum.set(true);
    let unknown = agent(&p, "node1", &p)
        .run("monitor")
        .expect(Status::DegradedPromoted);
    assert!(
        unknown.reason().contains("another primary runs is unknown"),
        "{}",
        unknown.reason()
    );
    assert_eq!(p.psql("SHOW synchronous_standby_names"), hold);
    assert!(waiting.is_alive(), "the held commit was released");

    // Stopped, the primary ends the held session with an error, never with
    // an acknowledgement of a commit the majority may lack.
    agent(&p, "node1", &p).run("stop").expect(Status::Success);
    assert!(
        wait_until(Duration::from_secs(10), || !waiting.is_alive()),
        "the held session outlived the stop"
    );
    let status = waiting.0.wait().unwrap();
    assert!(!status.success(), "the held commit was acknowledged");
    drop(s);
}

fn agent_without_quorum_library(p: &Instance) -> Agent {
    agent(p, "node1", p)
}
