//! The node lock judgement against a real Slony-I 2.2 cluster and real
//! slon processes: the field failure (a lock row naming a live process of
//! the postgres user keeps slon from starting) and what slon itself does
//! with each kind of PID a lock row can name.

use nix::unistd::User;
use ocf::Deadline;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use tusk_slon::database::NodeDb;
use tusk_slon::nodelock::{self, Expected, HolderClient, Verdict};
use tusk_testkit::slony::{SlonyCluster, SLON};
use tusk_testkit::{postgres_user, Guard};

fn secs(n: u64) -> Deadline {
    Deadline::after(Duration::from_secs(n))
}

/// The judgement of `node`'s slon lock row, observed as the agent will:
/// one query, then /proc.
fn judge_lock(cluster: &SlonyCluster, node: u32) -> Verdict {
    let pg = postgres_user();
    let db = NodeDb::from_conninfo(
        &cluster.node(node).conninfo(),
        "postgres",
        Some((pg.uid, pg.gid)),
    )
    .unwrap();
    let lock = nodelock::read(&db, cluster.name(), &secs(10)).unwrap();
    assert_eq!(lock.local_node, node as i32, "getLocalNodeId");
    let observed = nodelock::observe(&lock);
    let slon_lock = observed
        .iter()
        .find(|o| o.row.conn_cnt == 0)
        .unwrap_or_else(|| panic!("node {node} has no slon lock row: {lock:?}"));
    nodelock::judge(
        slon_lock,
        &Expected {
            cluster: cluster.name(),
            slon_binary: Path::new(SLON),
        },
    )
}

fn stale_reason(v: Verdict) -> String {
    match v {
        Verdict::Stale(why) => why,
        other => panic!("expected a stale lock, got {other:?}"),
    }
}

/// A process of `user` that is no backend: `sleep 600`.
fn sleep_as(user: &User) -> Guard {
    Guard(
        Command::new("/usr/bin/sleep")
            .arg("600")
            .uid(user.uid.as_raw())
            .gid(user.gid.as_raw())
            .spawn()
            .unwrap(),
    )
}

/// Starts slon for `node`, waits until it serves, crashes it (SIGKILL to
/// watchdog and worker) and waits until its backend is gone: the lock row
/// stays behind. Returns the dead backend's PID.
fn crashed_slon_leaves_its_row(cluster: &SlonyCluster, node: u32) -> i32 {
    let mut slon = cluster.start_slon(node);
    let backend = cluster
        .wait_serving(node, secs(30))
        .unwrap_or_else(|e| panic!("{e}\n{}", slon.log_text()));
    slon.crash(secs(10)).unwrap();
    cluster.wait_backend_gone(node, backend, secs(10)).unwrap();
    assert_eq!(
        cluster.lock_pid(node),
        Some(backend),
        "a killed slon leaves its sl_nodelock row"
    );
    backend
}

/// Starts slon for `node` with its lock row as it is and reports what
/// slon did: `Ok(backend)` once it serves, `Err(log)` if it exited first
/// (asserting that it exited 0, the way 2.2.11 ends after its FATAL).
fn try_slon(cluster: &SlonyCluster, node: u32) -> (Result<i32, String>, Duration) {
    let mut slon = cluster.start_slon(node);
    let deadline = secs(30);
    loop {
        if let Some(status) = slon.try_exit() {
            let took = slon.started.elapsed();
            assert_eq!(
                status.code(),
                Some(0),
                "slon 2.2.11 exits 0 after refusing; log:\n{}",
                slon.log_text()
            );
            return (Err(slon.log_text()), took);
        }
        if let Ok(backend) = cluster.wait_serving(node, Deadline::after(Duration::from_millis(1))) {
            let took = slon.started.elapsed();
            slon.crash(secs(10)).unwrap();
            cluster.wait_backend_gone(node, backend, secs(10)).unwrap();
            return (Ok(backend), took);
        }
        assert!(!deadline.is_expired(), "slon neither served nor exited");
        std::thread::sleep(Duration::from_millis(5));
    }
}

const DUPLICATE_KEY: &str = "duplicate key value violates unique constraint \"sl_nodelock-pkey\"";

/// The field failure: after a crash the lock's PID went to an unrelated
/// process of the postgres user. Slony's cleanup (kill(pid, 0) succeeds)
/// keeps the row and slon exits 0 with a duplicate-key FATAL; the judgement
/// says stale, and deleting that row is all slon needs.
#[test]
fn a_lock_naming_a_sleep_of_the_postgres_user_stops_slon_and_is_judged_stale() {
    let cluster = SlonyCluster::new(2);
    crashed_slon_leaves_its_row(&cluster, 1);
    let pg = postgres_user();
    let mut sleep = sleep_as(&pg);
    let sleep_pid = sleep.0.id() as i32;
    cluster.forge_lock(1, sleep_pid);

    let mut refused = cluster.start_slon(1);
    let status = refused
        .wait_exit(secs(30))
        .expect("slon gives up on a held lock");
    let took = refused.started.elapsed();
    let log = refused.log_text();
    assert!(log.contains(DUPLICATE_KEY), "{log}");
    assert!(
        log.contains("Key (nl_nodeid, nl_conncnt)=(1, 0) already exists"),
        "{log}"
    );
    assert_eq!(
        status.code(),
        Some(0),
        "slon exits 0 after the FATAL: {log}"
    );
    assert!(
        !refused.pid_file.exists(),
        "slon removes its pid file on the way out"
    );
    assert_eq!(cluster.lock_pid(1), Some(sleep_pid), "Slony kept the row");
    eprintln!("slon refused the lock naming sleep {sleep_pid} and exited 0 after {took:?}");

    let why = stale_reason(judge_lock(&cluster, 1));
    assert!(
        why.contains(&format!(
            "PID {sleep_pid} is no backend of this server (/usr/bin/sleep of uid {})",
            pg.uid
        )),
        "{why}"
    );

    // What the agent will do with a stale row: delete exactly that row.
    let deleted = cluster.node(1).query(&format!(
        "DELETE FROM {}.sl_nodelock WHERE nl_nodeid = 1 AND nl_conncnt = 0 \
         AND nl_backendpid = {sleep_pid} RETURNING 1",
        cluster.schema_sql()
    ));
    assert_eq!(deleted.len(), 1);
    let mut slon = cluster.start_slon(1);
    let backend = cluster
        .wait_serving(1, secs(30))
        .unwrap_or_else(|e| panic!("{e}\n{}", slon.log_text()));
    assert!(sleep.is_alive(), "nothing signalled the sleep");
    match judge_lock(&cluster, 1) {
        Verdict::HeldBy(h) => {
            assert_eq!(h.backend_pid, backend);
            let HolderClient::Local(p) = h.client else {
                panic!("a local slon: {h:?}")
            };
            assert_eq!(
                Some(p.pid),
                slon.worker_pid(),
                "the holder is slon's worker"
            );
        }
        other => panic!("a serving slon holds the lock: {other:?}"),
    }
}

/// While a slon serves the node, its lock row names its own local listen
/// backend, whose client is the slon worker on this host: held. A second
/// slon for the same node exits 0 with the duplicate-key FATAL and the
/// first one keeps serving. The cluster name needs quoting in SQL
/// (`"_Tusk_A$1"`).
#[test]
fn a_serving_slon_holds_the_lock_and_a_second_slon_is_refused() {
    let cluster = SlonyCluster::with_name("Tusk_A$1", 2);
    let mut slon = cluster.start_slon(1);
    let backend = cluster
        .wait_serving(1, secs(30))
        .unwrap_or_else(|e| panic!("{e}\n{}", slon.log_text()));
    let worker = slon.wait_worker(secs(5)).unwrap();

    let holder = match judge_lock(&cluster, 1) {
        Verdict::HeldBy(h) => h,
        other => panic!("a serving slon holds the lock: {other:?}"),
    };
    assert_eq!(holder.backend_pid, backend);
    let HolderClient::Local(client) = &holder.client else {
        panic!("a local slon: {holder:?}")
    };
    assert_eq!(client.pid, worker, "the lock's client is slon's worker");
    assert_eq!(
        client.ppid,
        slon.watchdog_pid(),
        "whose parent is the watchdog"
    );

    let second_pid_file = cluster.root().join("second.pid");
    let mut second =
        cluster.start_slon_with(1, &second_pid_file, tusk_testkit::slony::SLON_OPTIONS);
    let status = second
        .wait_exit(secs(30))
        .expect("the second slon gives up");
    let log = second.log_text();
    assert!(log.contains(DUPLICATE_KEY), "{log}");
    assert_eq!(status.code(), Some(0), "{log}");
    assert_eq!(cluster.lock_pid(1), Some(backend), "the lock is unchanged");
    assert!(slon.try_exit().is_none(), "the first slon still runs");
    assert_eq!(
        judge_lock(&cluster, 1),
        Verdict::HeldBy(holder),
        "and still holds the lock"
    );
}

/// Each other kind of PID a lock row can name after a crash, with what
/// slon 2.2.11 does about it and what the judgement says.
#[test]
fn every_other_pid_a_lock_can_name_is_judged_and_slon_reacts_as_documented() {
    let cluster = SlonyCluster::new(2);
    crashed_slon_leaves_its_row(&cluster, 1);

    // (a) A live backend of this database, a client that is no slon: slon
    // refuses (the postgres user may signal its own backend).
    let mut psql = cluster.node(1).connect().unwrap();
    psql.batch_execute("SET application_name = 'psql'").unwrap();
    let psql_backend: i32 = psql
        .query_one("SELECT pg_backend_pid()", &[])
        .unwrap()
        .get(0);
    cluster.forge_lock(1, psql_backend);
    let why = stale_reason(judge_lock(&cluster, 1));
    assert!(
        why.contains(&format!(
            "PID {psql_backend} is now the backend of \"psql\", not a slon's local listen connection"
        )),
        "{why}"
    );
    let (outcome, took) = try_slon(&cluster, 1);
    let log = outcome.expect_err("slon refuses a lock naming a live non-slon backend");
    assert!(log.contains(DUPLICATE_KEY), "{log}");
    eprintln!("(a) live non-slon backend {psql_backend}: slon exited 0 after {took:?}");

    // A client that calls itself slon.local_listen but is not slon (this
    // test process): the judgement refuses to guess.
    psql.batch_execute("SET application_name = 'slon.local_listen'")
        .unwrap();
    match judge_lock(&cluster, 1) {
        Verdict::Unknown(why) => assert!(
            why.contains(&format!(
                "backend {psql_backend} calls itself slon.local_listen but its client, PID {}",
                std::process::id()
            )) && why.ends_with("is not slon"),
            "{why}"
        ),
        other => panic!("a masquerading client is unknown: {other:?}"),
    }

    // A backend of another database of the same server.
    let mut other_db = postgres::Config::new()
        .host_path(&cluster.node(1).instance.socketdir)
        .port(5432)
        .user("postgres")
        .dbname("postgres")
        .application_name("slon.local_listen")
        .connect(postgres::NoTls)
        .unwrap();
    let other_backend: i32 = other_db
        .query_one("SELECT pg_backend_pid()", &[])
        .unwrap()
        .get(0);
    cluster.forge_lock(1, other_backend);
    let why = stale_reason(judge_lock(&cluster, 1));
    assert!(why.contains("a backend of another database"), "{why}");
    drop(other_db);
    drop(psql);

    // (c) A root-owned process: kill(pid, 0) fails with EPERM, so Slony
    // deletes the row itself and slon starts.
    let root = User::from_uid(nix::unistd::Uid::from_raw(0))
        .unwrap()
        .unwrap();
    let root_sleep = sleep_as(&root);
    let root_pid = root_sleep.0.id() as i32;
    cluster.forge_lock(1, root_pid);
    let why = stale_reason(judge_lock(&cluster, 1));
    assert!(
        why.contains(&format!(
            "PID {root_pid} is no backend of this server (/usr/bin/sleep of uid 0)"
        )),
        "{why}"
    );
    let (outcome, took) = try_slon(&cluster, 1);
    outcome.unwrap_or_else(|log| panic!("slon cleans up a root-owned PID:\n{log}"));
    eprintln!("(c) root-owned PID {root_pid}: slon served after {took:?}");
    drop(root_sleep);

    // (d) A PID no process has: slon cleans up and starts.
    let mut exited = Command::new("/bin/true").spawn().unwrap();
    let dead_pid = exited.id() as i32;
    exited.wait().unwrap();
    cluster.forge_lock(1, dead_pid);
    let why = stale_reason(judge_lock(&cluster, 1));
    assert!(
        why.contains(&format!(
            "PID {dead_pid} is no backend of this server (no process has it on this host)"
        )),
        "{why}"
    );
    let (outcome, took) = try_slon(&cluster, 1);
    outcome.unwrap_or_else(|log| panic!("slon cleans up a dead PID:\n{log}"));
    eprintln!("(d) dead PID {dead_pid}: slon served after {took:?}");

    // After the last crash the row names a backend that is gone.
    let why = stale_reason(judge_lock(&cluster, 1));
    assert!(why.contains("is no backend of this server"), "{why}");
}
