//! start against every kind of lock row the field leaves behind, against a
//! slon that already serves the node, beside another resource's slon, and
//! with a slon that exits 0 after its FATAL.

mod common;

use common::*;
use ocf::Status;
use tusk_testkit::slony::SlonyCluster;

/// Starts the agent while node 1's lock row names `pid`, and checks that
/// start succeeded, deleted that row (logging why) and that the row now
/// names the new slon's lock connection.
fn start_over(cluster: &SlonyCluster, pid: i32, why: &str) {
    plant_lock(cluster, 1, pid);
    let out = agent(cluster, 1).run("start").expect(Status::Success);
    assert!(
        out.stderr.contains("sl_nodelock row was stale") && out.stderr.contains(why),
        "{why}: {}",
        out.stderr
    );
    println!("{}", out.stderr);
    let (backend, app) = lock_holder(cluster, 1).unwrap();
    assert_ne!(backend, pid, "the row was replaced");
    assert_eq!(app.as_deref(), Some("slon.local_listen"));
    monitor(agent(cluster, 1)).expect(Status::Success);
    agent(cluster, 1).run("stop").expect(Status::Success);
    assert_nothing_left(cluster, 1);
}

/// The four PIDs a lock row left by a crashed slon may name after a
/// reboot; slon 2.2.11 itself fails on the first two (exit 0, duplicate
/// key, see tests/nodelock.rs), the agent starts it in all four.
#[test]
fn a_lock_row_naming_anything_but_a_live_slon_is_replaced() {
    let cluster = SlonyCluster::new(2);
    let _notes = notes_of(&cluster);

    // (a) A live backend that is no slon's: a session of the test.
    let mut session = cluster.node(1).connect().unwrap();
    let psql_backend: i32 = session
        .query_one("SELECT pg_backend_pid()", &[])
        .unwrap()
        .get(0);
    start_over(
        &cluster,
        psql_backend,
        "now the backend of \"tusk-testkit\"",
    );
    drop(session);

    // (b) A live process of the postgres user that is no backend.
    let sleep = postgres_sleeper();
    start_over(&cluster, sleep.0.id() as i32, "/usr/bin/sleep of uid");

    // (c) A root-owned process.
    let root_sleep = sleeper(0, 0);
    start_over(
        &cluster,
        root_sleep.0.id() as i32,
        "/usr/bin/sleep of uid 0",
    );

    // (d) A PID no process has.
    let mut gone = sleeper(0, 0);
    let dead = gone.0.id() as i32;
    let _ = gone.0.kill();
    let _ = gone.0.wait();
    start_over(&cluster, dead, "no process has it on this host");
}

/// A slon started outside the resource (here by the test) serves node 1:
/// start refuses and names it, the probe reports it, and stop ends it.
#[test]
fn a_second_slon_serving_the_node_is_found_and_named() {
    let cluster = SlonyCluster::new(2);
    let _notes = notes_of(&cluster);
    let mut outside = cluster.start_slon(1);
    let backend = cluster.wait_serving(1, secs(30)).unwrap();
    let worker = outside.wait_worker(secs(10)).unwrap();

    let out = agent(&cluster, 1).run("start").expect(Status::ErrGeneric);
    let reason = out.reason();
    println!("{reason}");
    assert!(
        reason.contains("another slon already serves node 1")
            && reason.contains(&format!("slon PID {worker}"))
            && reason.contains(&format!("backend {backend}")),
        "{reason}"
    );
    assert_eq!(
        lock_holder(&cluster, 1).map(|h| h.0),
        Some(backend),
        "the row is kept"
    );
    assert_eq!(outside.try_exit(), None, "the other slon still runs");

    let out = probe(agent(&cluster, 1)).expect(Status::ErrGeneric);
    assert!(
        out.reason().contains("another slon serves node 1")
            && out.reason().contains(&format!("slon PID {worker}")),
        "{}",
        out.reason()
    );

    // Pacemaker's recovery: stop, which ends every slon of this node here.
    agent(&cluster, 1).run("stop").expect(Status::Success);
    assert!(
        outside.wait_exit(secs(5)).is_some(),
        "the other slon was stopped"
    );
    assert_nothing_left(&cluster, 1);
    agent(&cluster, 1).run("start").expect(Status::Success);
    agent(&cluster, 1).run("stop").expect(Status::Success);
}

/// Two resources on one host, node 1 and node 2 of one cluster: each
/// finds, monitors and stops its own slon only.
#[test]
fn two_slon_resources_on_one_host_are_never_confused() {
    let cluster = SlonyCluster::new(2);
    let _notes = notes_of(&cluster);
    agent(&cluster, 1).run("start").expect(Status::Success);
    agent(&cluster, 2).run("start").expect(Status::Success);
    let node2 = slons_of(&cluster, 2);
    assert_eq!(node2.len(), 2);
    monitor(agent(&cluster, 1)).expect(Status::Success);
    monitor(agent(&cluster, 2)).expect(Status::Success);

    agent(&cluster, 1).run("stop").expect(Status::Success);
    assert_nothing_left(&cluster, 1);
    assert_eq!(slons_of(&cluster, 2), node2, "node 2's slon untouched");
    monitor(agent(&cluster, 2)).expect(Status::Success);
    probe(agent(&cluster, 1)).expect(Status::NotRunning);

    // Node 1's resource given node 2's pid file: the file names a slon of
    // another node, which is not this resource's.
    let other_pid_file = cluster.root().join("agent-2.pid");
    probe(agent(&cluster, 1).param("pidfile", &other_pid_file)).expect(Status::NotRunning);
    agent(&cluster, 1)
        .param("pidfile", &other_pid_file)
        .run("stop")
        .expect(Status::Success);
    assert_eq!(slons_of(&cluster, 2), node2, "node 2's slon untouched");
    agent(&cluster, 2).run("stop").expect(Status::Success);
    assert_nothing_left(&cluster, 2);
}

/// slon 2.2.11 exits 0 after its FATAL: a start whose slon does so fails.
/// A trigger makes the insert of the lock row fail the way a row taken
/// between the agent's judgement and slon's insert would.
#[test]
fn slon_exiting_0_after_its_fatal_is_a_failed_start() {
    let cluster = SlonyCluster::new(2);
    let _notes = notes_of(&cluster);
    let s = cluster.schema_sql();
    cluster.node(1).query(&format!(
        "CREATE FUNCTION public.refuse_lock() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
           RAISE unique_violation USING MESSAGE = \
             'duplicate key value violates unique constraint \"sl_nodelock-pkey\"'; \
         END $$; \
         CREATE TRIGGER refuse_lock BEFORE INSERT ON {s}.sl_nodelock \
           FOR EACH ROW WHEN (NEW.nl_conncnt = 0) EXECUTE FUNCTION public.refuse_lock()"
    ));
    let out = agent(&cluster, 1).run("start").expect(Status::ErrGeneric);
    let reason = out.reason();
    assert!(
        reason.contains("slon exited (exit status: 0) before it held this node's lock")
            && reason.contains("duplicate key value"),
        "{reason}"
    );
    assert_eq!(slons_of(&cluster, 1), Vec::new(), "nothing left running");
    probe(agent(&cluster, 1)).expect(Status::NotRunning);

    cluster
        .node(1)
        .query(&format!("DROP TRIGGER refuse_lock ON {s}.sl_nodelock"));
    agent(&cluster, 1).run("start").expect(Status::Success);
    agent(&cluster, 1).run("stop").expect(Status::Success);
}
