//! What Slony-I 2.2.11's slon and slonik do on PostgreSQL 15, asserted:
//! the facts the slon agent is built on (docs/slony-facts.md). A Slony-I
//! upgrade that changes one of them fails here first. Figures are printed
//! (`cargo nextest run -p tusk-slon --test slony_facts --no-capture`).

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use ocf::process::ProcInfo;
use ocf::Deadline;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};
use tusk_slon::peer::{self, Client, Peer};
use tusk_testkit::postgres_user;
use tusk_testkit::slony::{SlonyCluster, SLON_OPTIONS};

fn secs(n: u64) -> Deadline {
    Deadline::after(Duration::from_secs(n))
}

/// The application_name of every backend of `node`'s database whose
/// client is `pid`, found as the agent finds a lock's client.
fn connections_of(cluster: &SlonyCluster, node: u32, pid: i32) -> Vec<(i32, String)> {
    let rows = cluster.node(node).query(
        "SELECT pid, application_name FROM pg_stat_activity \
         WHERE datname = current_database() AND client_port = -1 ORDER BY application_name",
    );
    rows.iter()
        .filter_map(|r| {
            let backend: i32 = r[0].as_deref()?.parse().ok()?;
            match peer::find(backend, &Client::UnixSocket, 5432) {
                Peer::Local(p) if p.pid == pid => Some((backend, r[1].clone()?)),
                _ => None,
            }
        })
        .collect()
}

fn ignored_signals(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))
        .unwrap()
        .trim();
    u64::from_str_radix(hex, 16).unwrap()
}

fn ignores(mask: u64, signal: Signal) -> bool {
    mask & (1 << (signal as i32 - 1)) != 0
}

/// slon is two processes (watchdog and worker); the pid file names the
/// watchdog; the worker makes every connection, and the lock is its local
/// listen connection's backend; SIGTERM to the watchdog ends both and
/// leaves the lock row behind; a SIGKILLed watchdog leaves an orphaned
/// worker that goes on serving and ignores SIGTERM.
#[test]
fn slon_processes_pid_file_connections_and_lock_rows() {
    let cluster = SlonyCluster::new(2);
    let pg = postgres_user();

    // Time to serve: from exec to the lock row naming slon's live backend.
    let mut serve_times = Vec::new();
    for _ in 0..3 {
        let mut slon = cluster.start_slon(1);
        cluster.wait_serving(1, secs(30)).unwrap();
        serve_times.push(slon.started.elapsed());
        slon.terminate(secs(20)).unwrap();
    }
    eprintln!("slon served node 1 after {serve_times:?}");

    let mut slon1 = cluster.start_slon(1);
    let mut slon2 = cluster.start_slon(2);
    let lock_backend = cluster.wait_serving(1, secs(30)).unwrap();
    cluster.wait_serving(2, secs(30)).unwrap();
    let watchdog = slon1.watchdog_pid();
    let worker = slon1.wait_worker(secs(5)).unwrap();
    let w = ProcInfo::read(watchdog).unwrap().unwrap();
    let k = ProcInfo::read(worker).unwrap().unwrap();
    assert_eq!(k.ppid, watchdog, "the worker is the watchdog's child");
    assert_eq!(w.ppid, std::process::id() as i32, "slon does not daemonize");
    assert_eq!(w.exe, k.exe);
    assert_eq!(w.cmdline, k.cmdline, "both show slon's own command line");
    assert_eq!((w.uid, k.uid), (pg.uid.as_raw(), pg.uid.as_raw()));
    eprintln!("watchdog {watchdog} and worker {worker}: {:?}", k.cmdline);

    let pid_file = std::fs::read_to_string(&slon1.pid_file).unwrap();
    assert_eq!(
        pid_file,
        format!("{watchdog}\n"),
        "the pid file names the watchdog"
    );
    let meta = std::fs::metadata(&slon1.pid_file).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o777), (pg.uid.as_raw(), 0o644));

    // Signals: the watchdog handles TERM; the worker ignores it.
    assert!(!ignores(ignored_signals(watchdog), Signal::SIGTERM));
    assert!(ignores(ignored_signals(worker), Signal::SIGTERM));

    // Connections: every one is the worker's; the lock's is local_listen.
    let names = |conns: &[(i32, String)]| conns.iter().map(|c| c.1.clone()).collect::<Vec<_>>();
    let own = connections_of(&cluster, 1, worker);
    let worker2 = slon2.wait_worker(secs(5)).unwrap();
    let remote = connections_of(&cluster, 1, worker2);
    eprintln!("node 1's database: slon 1's connections {:?}", names(&own));
    eprintln!(
        "node 1's database: slon 2's connections {:?}",
        names(&remote)
    );
    assert!(
        connections_of(&cluster, 1, watchdog).is_empty(),
        "the watchdog has none"
    );
    assert!(own.iter().all(|(_, a)| a.starts_with("slon.")));
    assert!(remote.iter().all(|(_, a)| a.starts_with("slon.")));
    let listen: Vec<_> = own
        .iter()
        .filter(|(_, a)| a == "slon.local_listen")
        .collect();
    assert_eq!(listen.len(), 1);
    assert_eq!(
        listen[0].0, lock_backend,
        "the lock row names the local_listen backend"
    );

    // Lock rows: (1, 0) is slon 1's; node 2's slon registers (2, n) rows
    // for its connections to node 1.
    let rows = cluster.nodelock(1);
    eprintln!("node 1's sl_nodelock with both slons running: {rows:?}");
    let remote_pids: Vec<i32> = remote.iter().map(|c| c.0).collect();
    for r in &rows {
        match r.node_id {
            1 => assert_eq!((r.conn_cnt, r.backend_pid), (0, lock_backend)),
            2 => assert!(r.conn_cnt > 0),
            other => panic!("unexpected node {other} in {rows:?}"),
        }
    }
    assert!(
        rows.iter()
            .filter(|r| r.node_id == 2)
            .any(|r| remote_pids.contains(&r.backend_pid)),
        "node 2's slon holds rows in node 1's table: {rows:?}"
    );

    // A second slon with the same pid file: it overwrites the file, gives
    // up, and removes it; the running slon has lost its pid file.
    let mut second = cluster.start_slon_with(1, &slon1.pid_file.clone(), SLON_OPTIONS);
    let status = second.wait_exit(secs(30)).unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(
        !slon1.pid_file.exists(),
        "the second slon removed the first one's pid file"
    );
    assert!(slon1.try_exit().is_none(), "the first slon still runs");
    assert!(second.log_text().contains("remove pid file"));

    // A pid file slon cannot write: it exits 255 at once.
    let mut unwritable =
        cluster.start_slon_with(1, std::path::Path::new("/proc/slon.pid"), SLON_OPTIONS);
    let status = unwritable.wait_exit(secs(10)).unwrap();
    assert_eq!(status.code(), Some(255), "{}", unwritable.log_text());
    assert!(unwritable.log_text().contains("Cannot open pid_file"));

    // SIGTERM to the watchdog: it SIGKILLs the worker, removes its pid
    // file and exits 0; the lock row stays, naming a backend that is gone.
    std::fs::write(&slon1.pid_file, format!("{watchdog}\n")).unwrap();
    let t = Instant::now();
    let status = slon1.terminate(secs(20)).unwrap();
    let stop_took = t.elapsed();
    assert_eq!(status.code(), Some(0));
    let log = slon1.log_text();
    assert!(log.contains("child terminated signal: 9"), "{log}");
    assert!(log.contains("slon: remove pid file"), "{log}");
    assert!(!slon1.pid_file.exists());
    cluster
        .wait_backend_gone(1, lock_backend, secs(10))
        .unwrap();
    assert_eq!(
        cluster.lock_pid(1),
        Some(lock_backend),
        "SIGTERM leaves the row"
    );
    eprintln!("SIGTERM: watchdog and worker gone after {stop_took:?}; row (1, 0) still names {lock_backend}");

    // SIGKILL to the watchdog alone: the worker is orphaned and goes on
    // serving, SIGTERM does not end it, SIGKILL does; the pid file stays.
    let mut slon1 = cluster.start_slon(1);
    let lock_backend = cluster.wait_serving(1, secs(30)).unwrap();
    let worker = slon1.wait_worker(secs(5)).unwrap();
    let orphan = ProcInfo::read(worker).unwrap().unwrap();
    slon1.signal_watchdog(Signal::SIGKILL);
    slon1.wait_exit(secs(10)).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let still = ProcInfo::read(worker).unwrap().unwrap();
    assert_eq!(still.start_ticks, orphan.start_ticks);
    assert_ne!(still.ppid, slon1.watchdog_pid(), "reparented");
    assert_eq!(
        cluster.lock_pid(1),
        Some(lock_backend),
        "the orphan still holds the lock"
    );
    cluster.wait_serving(1, secs(1)).unwrap();
    assert!(slon1.pid_file.exists(), "nobody removed the pid file");
    kill(Pid::from_raw(worker), Signal::SIGTERM).unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let after_term = ProcInfo::read(worker).unwrap().unwrap();
    assert_eq!(
        after_term.start_ticks, orphan.start_ticks,
        "SIGTERM is ignored"
    );
    slon1.crash(secs(10)).unwrap();
    cluster
        .wait_backend_gone(1, lock_backend, secs(10))
        .unwrap();
    assert_eq!(
        cluster.lock_pid(1),
        Some(lock_backend),
        "SIGKILL leaves the row"
    );
    drop(slon2);
}

/// Slony's own cleanup calls killBackend(pid, 'NULL') to test a PID; the
/// 'TERM' variant that terminateNodeConnections() uses sends nothing in
/// 2.2.11. getLocalNodeId takes the schema name as a value.
#[test]
fn slony_functions_and_what_pg_stat_activity_shows_other_roles() {
    let cluster = SlonyCluster::with_name("Tusk_A$1", 2);
    let schema = cluster.schema_sql();
    for n in cluster.nodes() {
        let id = n.value(&format!("SELECT {schema}.getLocalNodeId('_Tusk_A$1')"));
        assert_eq!(id, Some(n.id.to_string()));
    }
    let wrong = cluster
        .node(1)
        .try_query(&format!("SELECT {schema}.getLocalNodeId('_tusk_a$1')"))
        .unwrap_err();
    assert!(
        wrong.contains("relation \"_tusk_a$1.sl_local_node_id\" does not exist"),
        "{wrong}"
    );

    let pg = postgres_user();
    let sleep = tusk_testkit::Guard(
        std::process::Command::new("/usr/bin/sleep")
            .arg("600")
            .uid(pg.uid.as_raw())
            .gid(pg.gid.as_raw())
            .spawn()
            .unwrap(),
    );
    let pid = sleep.0.id();
    let node = cluster.node(1);
    assert_eq!(
        node.value(&format!("SELECT {schema}.killBackend({pid}, 'NULL')")),
        Some("0".into()),
        "the postgres user may signal its own sleep"
    );
    assert_eq!(
        node.value(&format!("SELECT {schema}.killBackend(1, 'NULL')")),
        Some("-1".into()),
        "EPERM for init"
    );
    assert_eq!(
        node.value(&format!("SELECT {schema}.killBackend({pid}, 'TERM')")),
        Some("0".into())
    );
    std::thread::sleep(Duration::from_millis(300));
    let state = ProcInfo::read(pid as i32).unwrap().unwrap();
    assert!(
        !state.has_exited(),
        "killBackend(pid, 'TERM') sent no SIGTERM"
    );

    // A role without pg_read_all_stats: which columns of another user's
    // backend does pg_stat_activity show?
    let mut slon = cluster.start_slon(1);
    let backend = cluster.wait_serving(1, secs(30)).unwrap();
    let row = node.query(&format!(
        "CREATE ROLE watcher; SET ROLE watcher; \
         SELECT application_name IS NULL, client_port IS NULL, backend_start IS NULL, usename \
         FROM pg_stat_activity WHERE pid = {backend}"
    ));
    eprintln!("an unprivileged role sees slon's lock backend as (application_name is null, client_port is null, backend_start is null, usename) = {row:?}");
    let shown = |column: usize| row[0][column].as_deref() == Some("f");
    assert!(shown(0), "application_name is shown to every role");
    assert!(!shown(1), "client_port is hidden");
    assert!(!shown(2), "backend_start is hidden");
    slon.terminate(secs(20)).unwrap();
}

/// How long a row takes to reach the subscriber, the syntax and duration
/// of a planned MOVE SET with the fixture's slon options, and FAILOVER to
/// the subscriber when the origin's PostgreSQL is down.
#[test]
fn replication_move_set_and_failover() {
    let cluster = SlonyCluster::new(2);
    let mut slon1 = cluster.start_slon(1);
    let mut slon2 = cluster.start_slon(2);
    cluster.wait_serving(1, secs(30)).unwrap();
    cluster.wait_serving(2, secs(30)).unwrap();

    let mut lags = Vec::new();
    for i in 0..3 {
        let ids = i * 100..i * 100 + 10;
        cluster.insert_rows(1, ids.clone());
        lags.push(cluster.wait_rows(2, ids, secs(60)).unwrap());
    }
    eprintln!("rows reached the subscriber after {lags:?} (slon {SLON_OPTIONS:?})");
    let confirms = cluster.confirms(1);
    eprintln!("node 1's sl_confirm: {confirms:?}");
    assert!(confirms.iter().any(|c| c.origin == 1 && c.received == 2));

    let refused = cluster
        .node(2)
        .try_query("INSERT INTO accounts VALUES (-1, 'on the subscriber')")
        .unwrap_err();
    assert!(
        refused
            .contains("Table accounts is replicated and cannot be modified on a subscriber node"),
        "{refused}"
    );

    let mut moves = Vec::new();
    for (from, to) in [(1, 2), (2, 1), (1, 2), (2, 1)] {
        let outcome = cluster.move_set(from, to, secs(120)).expect_success();
        moves.push(outcome.took);
        assert_eq!(cluster.set_origin(from, 1), Some(to));
        assert_eq!(cluster.set_origin(to, 1), Some(to));
        let id = 1000 + moves.len() as i64;
        cluster.insert_rows(to, id..id + 1);
        cluster.wait_rows(from, id..id + 1, secs(60)).unwrap();
    }
    eprintln!("MOVE SET (lock, move, wait for event) took {moves:?}");

    // FAILOVER with the origin's PostgreSQL down.
    slon1.terminate(secs(20)).unwrap();
    cluster.node(1).stop_server("immediate");
    let t = Instant::now();
    let failover = cluster
        .slonik("failover (id = 1, backup node = 2);\n", secs(180))
        .expect_success();
    let failover_took = t.elapsed();
    assert_eq!(cluster.set_origin(2, 1), Some(2));
    cluster.insert_rows(2, 2000..2001);
    eprintln!(
        "FAILOVER to node 2 took {failover_took:?}; slonik said: {}{}",
        failover.stdout, failover.stderr
    );
    let nodes = cluster.node(2).query(&format!(
        "SELECT no_id, no_active, no_failed FROM {}.sl_node ORDER BY 1",
        cluster.schema_sql()
    ));
    eprintln!("node 2's sl_node after FAILOVER: {nodes:?}");
    let t = Instant::now();
    cluster
        .slonik("drop node (id = 1, event node = 2);\n", secs(120))
        .expect_success();
    eprintln!("DROP NODE took {:?}", t.elapsed());
    // DROP NODE makes slon 2 restart its worker once more; its watchdog
    // may be in the restart delay now, where SIGTERM is lost (see
    // a_sigterm_during_the_restart_delay_is_lost).
    slon2.crash(secs(10)).unwrap();
}

/// `restart node` (and FAILOVER, DROP NODE, which notify slon the same
/// way) makes the worker exit; the watchdog logs "restart of worker in 20
/// seconds" and sleeps. A SIGTERM in that sleep only cuts it short: the
/// watchdog starts a new worker and goes on running. A second SIGTERM
/// stops it.
#[test]
fn a_sigterm_during_the_restart_delay_is_lost() {
    let cluster = SlonyCluster::new(2);
    let mut slon = cluster.start_slon(1);
    let first = cluster.wait_serving(1, secs(30)).unwrap();
    let worker = slon.wait_worker(secs(5)).unwrap();
    let t = Instant::now();
    cluster
        .slonik("restart node 1;\n", secs(60))
        .expect_success();
    Deadline::after(Duration::from_secs(30))
        .wait_for("the restart delay", Duration::from_millis(10), || {
            Ok(slon
                .log_text()
                .contains("restart of worker in 20 seconds")
                .then_some(()))
        })
        .unwrap();
    eprintln!("restart node: the watchdog sleeps after {:?}", t.elapsed());
    assert_ne!(slon.worker_pid(), Some(worker), "the old worker is gone");
    std::thread::sleep(Duration::from_secs(1));

    slon.signal_watchdog(Signal::SIGTERM);
    let new_worker = slon.wait_worker(secs(10)).unwrap();
    assert_ne!(new_worker, worker, "SIGTERM started a new worker");
    let serving = cluster.wait_serving(1, secs(30)).unwrap();
    assert_ne!(serving, first);
    assert!(
        slon.wait_exit(secs(5)).is_none(),
        "the watchdog still runs 5 s after SIGTERM"
    );
    let t = Instant::now();
    let status = slon.terminate(secs(20)).unwrap();
    eprintln!(
        "a second SIGTERM stopped slon after {:?} (exit {status:?})",
        t.elapsed()
    );
}

/// A worker that dies (SIGKILL) is replaced by the watchdog after a
/// delay, during which nothing serves the node while slon's watchdog and
/// pid file look fine.
#[test]
fn a_killed_worker_is_replaced_after_a_delay() {
    let cluster = SlonyCluster::new(2);
    let mut slon = cluster.start_slon(1);
    let first = cluster.wait_serving(1, secs(30)).unwrap();
    let worker = slon.wait_worker(secs(5)).unwrap();
    kill(Pid::from_raw(worker), Signal::SIGKILL).unwrap();
    let t = Instant::now();
    let replacement = Deadline::after(Duration::from_secs(60))
        .wait_for("a new worker", Duration::from_millis(20), || {
            Ok(slon.worker_pid().filter(|p| *p != worker))
        })
        .unwrap();
    let replaced_after = t.elapsed();
    let serving = cluster.wait_serving(1, secs(30)).unwrap();
    assert_ne!(serving, first);
    let log = slon.log_text();
    let delay = log
        .lines()
        .find(|l| l.contains("restart of worker in"))
        .unwrap_or("(no delay logged)");
    eprintln!(
        "worker {worker} SIGKILLed: worker {replacement} after {replaced_after:?}, serving after {:?}; {delay}",
        t.elapsed()
    );
    assert!(
        log.contains(&format!("child terminated signal: 9; pid: {worker}")),
        "{log}"
    );
    slon.terminate(secs(20)).unwrap();
}
