//! The promotable role against a real two-node Slony-I cluster, the agent
//! called the way Pacemaker would call it (outside a cluster: the node
//! attributes cannot be set, which the agent logs and goes on): a planned
//! move of the origin and back with a client writing, FAILOVER of an
//! origin whose PostgreSQL is stopped, none of one that merely does not
//! answer, and the failed-over node rejoining at start (or refused under
//! failback=off).

mod common;

use common::*;
use ocf::Status;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tusk_testkit::slony::SlonyCluster;
use tusk_testkit::Agent;

fn admin_conninfo(cluster: &SlonyCluster) -> String {
    cluster
        .nodes()
        .iter()
        .map(|n| format!("{}:{}", n.id, n.conninfo()))
        .collect::<Vec<_>>()
        .join("; ")
}

/// An instance of a promotable clone on Pacemaker node `nodeN`.
fn clone_agent(cluster: &SlonyCluster, node: u32) -> Agent {
    agent(cluster, node)
        .env("OCF_RESKEY_CRM_meta_promoted_max", "1")
        .env("OCF_RESKEY_CRM_meta_notify", "true")
        .env("OCF_RESKEY_CRM_meta_on_node", &format!("node{node}"))
        .param("sets", "1")
        .param("admin_conninfo", admin_conninfo(cluster))
}

/// A client inserting one row after another into whichever node accepts
/// writes (the origin), remembering every row it was told was committed
/// and the longest time between two commits.
struct Writer {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<i64>>>,
    longest_gap: Arc<Mutex<Duration>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    fn start(cluster: &SlonyCluster, first_id: i64) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let longest_gap = Arc::new(Mutex::new(Duration::ZERO));
        let sockets: Vec<_> = cluster
            .nodes()
            .iter()
            .map(|n| n.instance.socketdir.clone())
            .collect();
        let (s, a, g) = (stop.clone(), acked.clone(), longest_gap.clone());
        let thread = std::thread::spawn(move || {
            let mut id = first_id;
            let mut last = Instant::now();
            let mut target = 0;
            while !s.load(Ordering::SeqCst) {
                let client = postgres::Config::new()
                    .host_path(&sockets[target])
                    .port(5432)
                    .user("postgres")
                    .dbname("app")
                    .connect_timeout(Duration::from_secs(2))
                    .connect(postgres::NoTls);
                let ok = client.is_ok_and(|mut c| {
                    c.batch_execute(&format!(
                        "SET statement_timeout = 2000; INSERT INTO accounts VALUES ({id}, 'writer')"
                    ))
                    .is_ok()
                });
                if ok {
                    a.lock().unwrap().push(id);
                    id += 1;
                    let gap = last.elapsed();
                    let mut longest = g.lock().unwrap();
                    *longest = (*longest).max(gap);
                    last = Instant::now();
                } else {
                    target = (target + 1) % sockets.len();
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Writer {
            stop,
            acked,
            longest_gap,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> (Vec<i64>, Duration) {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.take().unwrap().join().unwrap();
        let acked = self.acked.lock().unwrap().clone();
        let gap = *self.longest_gap.lock().unwrap();
        (acked, gap)
    }
}

/// Every acknowledged row is on `node`.
fn assert_rows_on(cluster: &SlonyCluster, node: u32, acked: &[i64]) {
    let list = acked
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let sql = format!("SELECT count(*) FROM accounts WHERE id IN ({list})");
    let want = acked.len().to_string();
    assert!(
        tusk_testkit::wait_until(Duration::from_secs(60), || {
            cluster.node(node).value(&sql) == Some(want.clone())
        }),
        "node {node} lacks acknowledged rows"
    );
}

fn moved_in(stderr: &str) -> String {
    stderr
        .lines()
        .find(|l| l.contains("moved from node"))
        .unwrap_or("")
        .to_string()
}

#[test]
fn a_planned_move_of_the_origin_and_back_loses_no_row() {
    let cluster = SlonyCluster::new(2);
    let _notes = notes_of(&cluster);
    clone_agent(&cluster, 1)
        .run("start")
        .expect(Status::Success);
    clone_agent(&cluster, 2)
        .run("start")
        .expect(Status::Success);
    // Started, node 1 is the origin but not promoted yet: 0, and the
    // origin's score makes Pacemaker promote it, which moves nothing.
    monitor(clone_agent(&cluster, 1)).expect(Status::Success);
    clone_agent(&cluster, 1)
        .run("promote")
        .expect(Status::Success);
    monitor(clone_agent(&cluster, 1)).expect(Status::RunningPromoted);
    monitor(clone_agent(&cluster, 2)).expect(Status::Success);

    let writer = Writer::start(&cluster, 1000);
    std::thread::sleep(Duration::from_secs(1));
    // Pacemaker's demote of node1 in a transition that promotes node2.
    let asked = Instant::now();
    let out = clone_agent(&cluster, 1)
        .env("OCF_RESKEY_CRM_meta_notify_promote_uname", "node2")
        .timeout_ms(90_000)
        .run("demote")
        .expect(Status::Success);
    let demote_took = asked.elapsed();
    assert_eq!(cluster.set_origin(1, 1), Some(2), "{}", out.stderr);
    let forth = moved_in(&out.stderr);
    clone_agent(&cluster, 2)
        .timeout_ms(90_000)
        .run("promote")
        .expect(Status::Success);
    monitor(clone_agent(&cluster, 2)).expect(Status::RunningPromoted);
    monitor(clone_agent(&cluster, 1)).expect(Status::Success);
    std::thread::sleep(Duration::from_secs(1));

    // And back: this time node 2's demote fails (its slonik cannot run),
    // Pacemaker stops node 2's instance, and node 1's promote finds node 2
    // still the origin, its PostgreSQL answering, and moves the sets itself.
    let out = clone_agent(&cluster, 2)
        .env("OCF_RESKEY_CRM_meta_notify_promote_uname", "node1")
        .param("slonik", "/bin/false")
        .run("demote")
        .expect(Status::ErrGeneric);
    assert!(out.reason().contains("slonik failed"), "{}", out.reason());
    assert_eq!(cluster.set_origin(2, 1), Some(2));
    clone_agent(&cluster, 2).run("stop").expect(Status::Success);
    let asked = Instant::now();
    let out = clone_agent(&cluster, 1)
        .timeout_ms(90_000)
        .run("promote")
        .expect(Status::Success);
    let promote_took = asked.elapsed();
    let back = moved_in(&out.stderr);
    monitor(clone_agent(&cluster, 1)).expect(Status::RunningPromoted);
    clone_agent(&cluster, 2)
        .run("start")
        .expect(Status::Success);
    monitor(clone_agent(&cluster, 2)).expect(Status::Success);
    std::thread::sleep(Duration::from_secs(1));
    let (acked, gap) = writer.finish();
    assert!(acked.len() > 20, "the writer wrote: {}", acked.len());
    assert_rows_on(&cluster, 1, &acked);
    assert_rows_on(&cluster, 2, &acked);
    println!(
        "planned move: demote {} ms ({forth}), promote moving back {} ms ({back}); longest \
         time between two acknowledged writes: {} ms; {} rows acknowledged, none lost",
        demote_took.as_millis(),
        promote_took.as_millis(),
        gap.as_millis(),
        acked.len()
    );
    // Sets moved by hand under a promoted instance: it lost its role.
    cluster.move_set(1, 2, secs(60)).expect_success();
    let out = monitor(clone_agent(&cluster, 1)).expect(Status::FailedPromoted);
    assert!(
        out.reason().contains("node 2 is the origin"),
        "{}",
        out.reason()
    );
    clone_agent(&cluster, 1).run("stop").expect(Status::Success);
    clone_agent(&cluster, 2).run("stop").expect(Status::Success);
}

#[test]
fn an_origin_whose_postgresql_is_stopped_is_failed_over_then_rejoined_and_moved_back() {
    let cluster = SlonyCluster::new(2);
    let _notes = notes_of(&cluster);
    clone_agent(&cluster, 1)
        .run("start")
        .expect(Status::Success);
    clone_agent(&cluster, 2)
        .run("start")
        .expect(Status::Success);
    cluster.insert_rows(1, 1..11);
    cluster.wait_rows(2, 1..11, secs(30)).unwrap();

    // The origin's node loses its database: slon and PostgreSQL gone.
    clone_agent(&cluster, 1).run("stop").expect(Status::Success);
    cluster.node(1).stop_server("immediate");
    let crashed = Instant::now();
    let out = clone_agent(&cluster, 2)
        .timeout_ms(90_000)
        .run("promote")
        .expect(Status::Success);
    assert!(
        out.stderr
            .contains("failing node 1 over to node 2: its PostgreSQL is stopped"),
        "{}",
        out.stderr
    );
    cluster
        .node(2)
        .query("INSERT INTO accounts VALUES (100, 'after the failover')");
    let first_write = crashed.elapsed();
    // FAILOVER and DROP NODE make node 2's slon restart its worker 20 s
    // later: promoted but degraded meanwhile, then promoted.
    let status = monitor(clone_agent(&cluster, 2)).status();
    assert!(
        matches!(
            status,
            Some(Status::RunningPromoted | Status::DegradedPromoted)
        ),
        "{status:?}"
    );
    assert!(tusk_testkit::wait_until(Duration::from_secs(45), || {
        monitor(clone_agent(&cluster, 2)).status() == Some(Status::RunningPromoted)
    }));

    // The old origin comes back: its catalog still names it the origin,
    // and it accepts writes.
    cluster.node(1).start_server();
    assert_eq!(cluster.set_origin(1, 1), Some(1), "node 1's own catalog");
    cluster
        .node(1)
        .query("INSERT INTO accounts VALUES (500, 'on the old origin, after it came back')");
    // With failback=off its start is refused and names the steps.
    let out = clone_agent(&cluster, 1)
        .param("failback", "off")
        .run("start")
        .expect(Status::ErrInstalled);
    assert!(
        out.reason().contains("node 1 was failed over")
            && out.reason().contains("node 2 names node 2 the origin"),
        "{}",
        out.reason()
    );
    assert_eq!(
        slons_of(&cluster, 1),
        Vec::new(),
        "no slon started on node 1"
    );

    // With failback=auto (the default): its rows saved, then dropped,
    // stored and subscribed again; the operator does nothing else.
    let saved_in = cluster.root().join("failback");
    std::fs::create_dir(&saved_in).unwrap();
    nix::unistd::chown(&saved_in, Some(postgres_uid()), None).unwrap();
    let rejoin = || clone_agent(&cluster, 1).param("failback_dir", &saved_in);
    let rejoining = Instant::now();
    let out = rejoin()
        .timeout_ms(90_000)
        .run("start")
        .expect(Status::Success);
    let start_took = rejoining.elapsed();
    let dump = std::fs::read_dir(&saved_in)
        .unwrap()
        .next()
        .expect("a dump of node 1's rows")
        .unwrap()
        .path();
    let text = std::fs::read_to_string(&dump).unwrap();
    assert!(
        text.contains("on the old origin, after it came back"),
        "{text}"
    );
    assert!(
        out.stderr.contains(&dump.display().to_string()),
        "the dump is logged: {}",
        out.stderr
    );
    assert_eq!(
        cluster.set_origin(1, 1),
        Some(2),
        "node 1 knows the new origin"
    );
    let active = format!(
        "SELECT sub_active FROM {}.sl_subscribe WHERE sub_set = 1 AND sub_receiver = 1",
        cluster.schema_sql()
    );
    assert!(
        tusk_testkit::wait_until(Duration::from_secs(120), || {
            cluster.node(2).value(&active).as_deref() == Some("t")
        }),
        "node 1 subscribed again"
    );
    let subscribed = rejoining.elapsed();
    cluster.wait_rows(1, 1..11, secs(60)).unwrap();
    cluster.wait_rows(1, 100..101, secs(60)).unwrap();
    assert_eq!(
        cluster
            .node(1)
            .value("SELECT count(*) FROM accounts WHERE id = 500")
            .as_deref(),
        Some("0"),
        "SUBSCRIBE SET emptied the table: only the dump keeps row 500"
    );

    // And back to node 1 by a planned move.
    assert!(tusk_testkit::wait_until(Duration::from_secs(60), || {
        monitor(rejoin()).status() == Some(Status::Success)
    }));
    clone_agent(&cluster, 2)
        .env("OCF_RESKEY_CRM_meta_notify_promote_uname", "node1")
        .timeout_ms(90_000)
        .run("demote")
        .expect(Status::Success);
    rejoin()
        .timeout_ms(90_000)
        .run("promote")
        .expect(Status::Success);
    monitor(rejoin()).expect(Status::RunningPromoted);
    cluster
        .node(1)
        .query("INSERT INTO accounts VALUES (600, 'back on node 1')");
    cluster.wait_rows(2, 600..601, secs(60)).unwrap();
    println!(
        "FAILOVER: origin's PostgreSQL stopped to the first write on node 2: {:.1} s; failback: \
         start (rows saved, node stored again, subscribed) {:.1} s, subscription active {:.1} s \
         after the start began",
        first_write.as_secs_f64(),
        start_took.as_secs_f64(),
        subscribed.as_secs_f64()
    );
    rejoin().run("stop").expect(Status::Success);
    clone_agent(&cluster, 2).run("stop").expect(Status::Success);
}

fn postgres_uid() -> nix::unistd::Uid {
    tusk_testkit::postgres_user().uid
}

#[test]
fn an_origin_that_merely_does_not_answer_is_not_failed_over() {
    let cluster = SlonyCluster::new(2);
    let _notes = notes_of(&cluster);
    // Node 1's admin conninfo leads to a socket that accepts connections
    // and never answers: a hung or partitioned server, not a stopped one.
    let hung = cluster.root().join("hung");
    std::fs::create_dir(&hung).unwrap();
    let _listener = std::os::unix::net::UnixListener::bind(hung.join(".s.PGSQL.5432")).unwrap();
    let admin = format!(
        "1:host={} dbname=app user=postgres; 2:{}",
        hung.display(),
        cluster.node(2).conninfo()
    );
    let a = |node| clone_agent(&cluster, node).param("admin_conninfo", &admin);
    a(1).run("start").expect(Status::Success);
    a(2).run("start").expect(Status::Success);
    a(1).run("stop").expect(Status::Success);
    let out = a(2)
        .timeout_ms(60_000)
        .run("promote")
        .expect(Status::ErrGeneric);
    assert!(
        out.reason().contains("cannot be failed over")
            && out.reason().contains("nothing shows it stopped or fenced"),
        "{}",
        out.reason()
    );
    assert_eq!(cluster.set_origin(2, 1), Some(1), "no FAILOVER ran");
    monitor(a(2)).expect(Status::Success);
    a(2).run("stop").expect(Status::Success);
}

/// Found under Pacemaker in the lab: a node stored in the cluster whose
/// slon has not yet processed the set's creation (its catalog does not
/// list the set) started with OCF_ERR_CONFIGURED, which stops the clone on
/// every node; and a node that receives nothing (stored, not subscribed)
/// still confirms the origin's events and got a subscriber's promotion
/// score, so Pacemaker promoted it and its promote failed, over and over.
#[test]
fn a_node_that_does_not_receive_the_set_starts_but_is_never_a_candidate() {
    let cluster = SlonyCluster::new(3);
    let _notes = notes_of(&cluster);
    // Node 2's catalog does not list set 7: neither origin nor subscriber.
    let unlisted = || clone_agent(&cluster, 2).param("sets", "1 7");
    unlisted().run("start").expect(Status::Success);
    monitor(unlisted()).expect(Status::Success);
    let out = unlisted().run("promote").expect(Status::ErrGeneric);
    assert!(
        out.reason().contains("does not list set 7"),
        "{}",
        out.reason()
    );
    unlisted().run("stop").expect(Status::Success);

    // Node 3 stops receiving the set: it confirms node 1's events all the
    // same, but only node 2 is a subscriber to score.
    cluster
        .slonik("unsubscribe set (id = 1, receiver = 3);\n", secs(60))
        .expect_success();
    let observe = |node: u32| {
        let params = ocf::Params::from_pairs(
            tusk_slon::config::PARAMS,
            &[
                ("cluster_name", cluster.name().as_str()),
                ("conninfo", &cluster.node(node).conninfo()),
                ("sets", "1"),
                ("admin_conninfo", &admin_conninfo(&cluster)),
            ],
        )
        .unwrap();
        let cfg = tusk_slon::config::SlonConfig::from_params(&params, "slon").unwrap();
        let pg = tusk_testkit::postgres_user();
        let db = cfg.instance.database(Some((pg.uid, pg.gid))).unwrap();
        tusk_slon::promotable::observe(&db, &cfg, &secs(10)).unwrap()
    };
    // The origin's catalog learns of it through the slons.
    for node in 1..=3 {
        clone_agent(&cluster, node)
            .run("start")
            .expect(Status::Success);
    }
    let receivers = format!(
        "SELECT count(*) FROM {}.sl_subscribe WHERE sub_receiver = 3",
        cluster.schema_sql()
    );
    assert!(
        tusk_testkit::wait_until(Duration::from_secs(60), || {
            cluster.node(1).value(&receivers).as_deref() == Some("0")
        }),
        "node 1 still lists node 3's subscription"
    );
    let confirms_of_3 = cluster
        .confirms(3)
        .into_iter()
        .any(|c| c.origin == 1 && c.received == 3);
    assert!(confirms_of_3, "node 3 confirms node 1's events");
    for node in [1, 3] {
        let obs = observe(node);
        assert!(
            obs.confirms.iter().all(|(receiver, _)| *receiver != 3),
            "node {node} counts node 3's confirmations: {:?}",
            obs.confirms
        );
        assert_eq!(
            tusk_slon::origin::score(
                tusk_slon::origin::Role::Subscriber { origin: 1 },
                &obs.confirms,
                3
            ),
            None,
            "node 3 gets a score as node {node} sees it"
        );
        assert_eq!(
            tusk_slon::origin::best_subscriber(&obs.confirms, 1, &[2, 3]),
            Some(2)
        );
    }
    for node in 1..=3 {
        clone_agent(&cluster, node)
            .run("stop")
            .expect(Status::Success);
    }
}

/// Found in the lab (the origin's postmaster killed): slon's monitor
/// failed on the refused connection before PostgreSQL's own monitor saw
/// the crash, Pacemaker restarted slon alone, its start failed against the
/// dead database and the node was banned from slon for good; the demote
/// that preceded failed too. With the database known stopped, slon (which
/// runs, and retries the database by itself) is degraded, and the demote
/// has nothing to move.
#[test]
fn an_origin_whose_postgresql_is_down_is_degraded_and_demotes_without_moving() {
    let cluster = SlonyCluster::new(2);
    let _notes = notes_of(&cluster);
    for node in [1, 2] {
        clone_agent(&cluster, node)
            .run("start")
            .expect(Status::Success);
    }
    clone_agent(&cluster, 1)
        .run("promote")
        .expect(Status::Success);
    monitor(clone_agent(&cluster, 1)).expect(Status::RunningPromoted);
    cluster.node(1).stop_server("immediate");
    monitor(clone_agent(&cluster, 1)).expect(Status::DegradedPromoted);
    clone_agent(&cluster, 1)
        .env("OCF_RESKEY_CRM_meta_notify_promote_uname", "node2")
        .run("demote")
        .expect(Status::Success);
    monitor(clone_agent(&cluster, 1)).expect(Status::Degraded);
    clone_agent(&cluster, 1).run("stop").expect(Status::Success);
    // Back, it is still the origin: nothing was moved.
    cluster.node(1).start_server();
    assert_eq!(cluster.set_origin(1, 1), Some(1));
    assert_eq!(cluster.set_origin(2, 1), Some(1));
    clone_agent(&cluster, 2).run("stop").expect(Status::Success);
}

/// The worst timing for a failed-over old origin: its PostgreSQL back and
/// its slon running (not the agent's) long enough to process its own
/// DROP NODE, which drops the node's schema. Its start, which found no
/// schema, failed with 5 for good; now it sees the other node say it was
/// failed over, saves its rows (tables listed by the new origin) and
/// rejoins as usual.
#[test]
fn a_failed_over_origin_whose_slon_dropped_its_schema_rejoins() {
    let cluster = SlonyCluster::new(2);
    let _notes = notes_of(&cluster);
    for node in [1, 2] {
        clone_agent(&cluster, node)
            .run("start")
            .expect(Status::Success);
    }
    cluster.insert_rows(1, 1..11);
    cluster.wait_rows(2, 1..11, secs(30)).unwrap();
    clone_agent(&cluster, 1).run("stop").expect(Status::Success);
    cluster.node(1).stop_server("immediate");
    clone_agent(&cluster, 2)
        .timeout_ms(90_000)
        .run("promote")
        .expect(Status::Success);

    cluster.node(1).start_server();
    let mut slon = cluster.start_slon(1);
    let schema = format!(
        "SELECT to_regclass('{}.sl_set') IS NULL",
        cluster.schema_sql()
    );
    let dropped = tusk_testkit::wait_until(Duration::from_secs(90), || {
        cluster.node(1).value(&schema).as_deref() == Some("t")
    });
    slon.terminate(secs(30)).unwrap();
    assert!(dropped, "node 1's slon did not drop its schema");

    let saved_in = cluster.root().join("failback");
    std::fs::create_dir(&saved_in).unwrap();
    nix::unistd::chown(&saved_in, Some(postgres_uid()), None).unwrap();
    let rejoin = || clone_agent(&cluster, 1).param("failback_dir", &saved_in);
    let out = rejoin()
        .timeout_ms(90_000)
        .run("start")
        .expect(Status::Success);
    assert!(out.stderr.contains("has no schema"), "{}", out.stderr);
    let dump = std::fs::read_dir(&saved_in)
        .unwrap()
        .next()
        .expect("a dump of node 1's rows")
        .unwrap()
        .path();
    let text = std::fs::read_to_string(&dump).unwrap();
    assert!(text.contains("row 10"), "{text}");
    let active = format!(
        "SELECT sub_active FROM {}.sl_subscribe WHERE sub_set = 1 AND sub_receiver = 1",
        cluster.schema_sql()
    );
    assert!(
        tusk_testkit::wait_until(Duration::from_secs(120), || {
            cluster.node(2).value(&active).as_deref() == Some("t")
        }),
        "node 1 subscribed again"
    );
    rejoin().run("stop").expect(Status::Success);
    clone_agent(&cluster, 2).run("stop").expect(Status::Success);
}
