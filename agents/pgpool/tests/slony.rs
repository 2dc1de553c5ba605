//! pgpool-II 4.3 in slony mode in front of a real Slony-I 2.2 cluster of
//! three PostgreSQL 15 nodes (pgpool node N is Slony node N+1, set 1 from
//! Slony node 1): pgpool sends writes to its lowest-numbered attached
//! backend, so after a MOVE SET it sends them to a subscriber, which
//! refuses them, until one monitor detaches the backends below the new
//! origin; after the move back, one monitor attaches the origin again.

mod common;

use common::{agent_for, assert_said, nodes_of};
use ocf::{Deadline, Status};
use std::time::{Duration, Instant};
use tusk_pgpool::pcp::{BackendStatus, NodeInfo};
use tusk_testkit::pgpool::Pgpool;
use tusk_testkit::slony::{Slon, SlonyCluster, DATABASE, SET, TABLE};
use tusk_testkit::{wait_until, Agent};

fn secs(n: u64) -> Deadline {
    Deadline::after(Duration::from_secs(n))
}

fn attached(nodes: &[NodeInfo]) -> Vec<bool> {
    nodes.iter().map(|n| n.status.is_attached()).collect()
}

/// Inserts row `id` through pgpool.
fn write(pool: &Pgpool, id: i64) -> Result<String, String> {
    pool.try_psql_in(
        DATABASE,
        &format!("INSERT INTO {TABLE} VALUES ({id}, 'through pgpool')"),
    )
}

/// Waits (10 s) until row `id` is written through pgpool; prints how long
/// that took after the monitor that `did` something, which took `took`.
fn first_write(pool: &Pgpool, id: i64, did: &str, took: Duration) {
    let after = Instant::now();
    assert!(
        wait_until(Duration::from_secs(10), || write(pool, id).is_ok()),
        "no write through pgpool after the monitor that {did}: {:?}",
        write(pool, id)
    );
    eprintln!(
        "monitor that {did}: {:.2}s; first write through pgpool {:.2}s after it",
        took.as_secs_f64(),
        after.elapsed().as_secs_f64()
    );
}

/// A Slony cluster of `nodes` nodes, set 1 from node 1, with a slon
/// serving each node.
fn served_cluster(nodes: u32) -> (SlonyCluster, Vec<Slon>) {
    let cluster = SlonyCluster::new(nodes);
    let slons = (1..=nodes).map(|n| cluster.start_slon(n)).collect();
    for n in 1..=nodes {
        cluster.wait_serving(n, secs(30)).unwrap();
    }
    (cluster, slons)
}

/// The agent for `pool` in front of `cluster`, as resource `resource`.
fn slony_agent(cluster: &SlonyCluster, pool: &Pgpool, resource: &str) -> Agent {
    agent_for(pool, resource)
        .param("slony_cluster", cluster.name().as_str())
        .param("dbname", DATABASE)
}

/// The notes the agent keeps for `resource` (/run/tusk/RESOURCE), removed
/// when the test begins and when it ends, pass or fail.
struct Notes(&'static str);

impl Notes {
    fn fresh(resource: &'static str) -> Notes {
        let notes = Notes(resource);
        notes.remove();
        notes
    }

    fn remove(&self) {
        let _ = std::fs::remove_dir_all(format!("/run/tusk/{}", self.0));
    }
}

impl Drop for Notes {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Whether row `id` is in Slony node `node`'s table.
fn has_row(cluster: &SlonyCluster, node: u32, id: i64) -> bool {
    cluster
        .node(node)
        .value(&format!("SELECT count(*) FROM {TABLE} WHERE id = {id}"))
        .as_deref()
        == Some("1")
}

/// Moves set 1 from Slony node `from` to `to` and waits until every node's
/// catalog says so; a write through pgpool then still goes to the old
/// origin, which refuses it. Then one monitor, which must say `said` and
/// never promote.
fn move_then_monitor(
    cluster: &SlonyCluster,
    pool: &Pgpool,
    agent: Agent,
    (from, to): (u32, u32),
    said: &[&str],
) -> tusk_testkit::Outcome {
    cluster.move_set(from, to, secs(90)).expect_success();
    assert!(
        wait_until(Duration::from_secs(30), || (1..=3)
            .all(|n| cluster.set_origin(n, SET) == Some(to))),
        "not every node sees node {to} as the origin"
    );
    let refused = write(pool, 1000 + i64::from(to)).unwrap_err();
    assert_said(&refused, &["cannot be modified on a subscriber"], &[]);
    let monitor = agent.run("monitor").expect(Status::Success);
    eprintln!("{}", monitor.stderr);
    assert_said(&monitor.stderr, said, &["promote"]);
    monitor
}

#[test]
fn one_monitor_makes_pgpool_send_writes_to_the_new_origin() {
    let (cluster, _slons) = served_cluster(3);
    let pool = Pgpool::for_slony(&cluster);
    let _notes = Notes::fresh("pgpool-slony-move");
    let agent = || slony_agent(&cluster, &pool, "pgpool-slony-move");
    agent().run("validate-all").expect(Status::Success);
    // The cluster's schema is in the replicated database only.
    let elsewhere = agent()
        .param("dbname", "postgres")
        .run("validate-all")
        .expect(Status::Success);
    assert_said(
        &elsewhere.stderr,
        &["is dbname the replicated database?"],
        &[],
    );
    let start = agent().run("start").expect(Status::Success);
    eprintln!("{}", start.stderr);
    assert_eq!(
        std::fs::read_to_string(&pool.status_file).unwrap(),
        "up\nup\nup\n"
    );
    let nodes = nodes_of(&pool);
    eprintln!("pgpool in slony mode: {nodes:?}");
    assert_eq!(attached(&nodes), [true, true, true]);
    write(&pool, 1).unwrap();
    assert!(has_row(&cluster, 1, 1), "the write went to the origin");

    let monitor = move_then_monitor(
        &cluster,
        &pool,
        agent(),
        (1, 2),
        &[
            "detach node 0",
            "numbered below the origin, node 1",
            "backends: 2/3 attached, main slony2 (id 1)",
        ],
    );
    assert_eq!(attached(&nodes_of(&pool)), [false, true, true]);
    // pgpool restarts its children after a detach: the first client may
    // meet that.
    first_write(&pool, 3, "detached node 0", monitor.took);
    assert!(has_row(&cluster, 2, 3), "the write went to the new origin");
    // In step: the next monitor changes nothing.
    let again = agent().run("monitor").expect(Status::Success);
    assert!(!again.stderr.contains("node 0"), "{}", again.stderr);
    eprintln!(
        "monitor in step (three backends asked): {:.3}s",
        again.took.as_secs_f64()
    );
    assert_eq!(nodes_of(&pool)[0].status, BackendStatus::Down);

    let monitor = move_then_monitor(
        &cluster,
        &pool,
        agent(),
        (2, 1),
        &[
            "attach node 0",
            "it is the origin of the sets (Slony node 1)",
            "backends: 3/3 attached, main slony1 (id 0)",
        ],
    );
    first_write(&pool, 4, "attached node 0", monitor.took);
    assert!(
        has_row(&cluster, 1, 4),
        "the write went to the origin again"
    );
    agent().run("stop").expect(Status::Success);
}

/// A second set whose origin is the other node: no backend takes every
/// write. validate-all says so (a warning: it is a state of the databases
/// that a MOVE SET ends, not a configuration to refuse), start leaves
/// pgpool's status file alone and the monitor changes nothing.
#[test]
fn sets_with_different_origins_are_warned_about_and_change_nothing() {
    let (cluster, _slons) = served_cluster(2);
    for n in 1..=2 {
        cluster
            .node(n)
            .query("CREATE TABLE others (id bigint PRIMARY KEY)");
    }
    cluster
        .slonik(
            "create set (id = 2, origin = 2, comment = 'others');\n\
             set add table (set id = 2, origin = 2, id = 2, \
             fully qualified name = 'public.others');\n",
            secs(60),
        )
        .expect_success();
    let pool = Pgpool::for_slony(&cluster);
    let _notes = Notes::fresh("pgpool-slony-split");
    let agent = || slony_agent(&cluster, &pool, "pgpool-slony-split");
    let validate = agent().run("validate-all").expect(Status::Success);
    eprintln!("{}", validate.stderr);
    let differ = "different origins (set 1 on node 1, set 2 on node 2";
    assert_said(&validate.stderr, &[differ], &[]);
    let start = agent().run("start").expect(Status::Success);
    assert_said(&start.stderr, &["left as pgpool wrote it", differ], &[]);
    let monitor = agent().run("monitor").expect(Status::Success);
    assert_said(&monitor.stderr, &["left as it is", differ], &["detach"]);
    assert_eq!(attached(&nodes_of(&pool)), [true, true]);
    agent().run("stop").expect(Status::Success);
}

/// Slony mode without the cluster's name: the agent cannot tell where
/// writes must go, and says so.
#[test]
fn slony_mode_without_the_cluster_name_is_a_configuration_error() {
    let s = common::setup(
        "pgpool-slony-unnamed",
        &[("backend_clustering_mode", "'slony'")],
    );
    type Case<'a> = (&'a [(&'a str, &'a str)], Status, &'a str);
    let cases: [Case; 3] = [
        (&[], Status::ErrConfigured, "slony_cluster is empty"),
        (&[("reconcile", "false")], Status::Success, ""),
        (
            &[("slony_cluster", "tusk; drop")],
            Status::ErrConfigured,
            "slony_cluster: the Slony cluster name",
        ),
    ];
    for (params, status, reason) in cases {
        let agent = params
            .iter()
            .fold(s.agent(), |agent, (name, value)| agent.param(name, value));
        let out = agent.run("validate-all").expect(status);
        assert_said(out.reason(), &[reason], &[]);
    }
}

/// After a FAILOVER from Slony node 1 to node 2 and a DROP NODE of node 1,
/// node 1's PostgreSQL comes back: its own catalog still names it the
/// origin, and it accepts writes (docs/slony-facts.md). A pgpool started
/// then without its status file would attach both backends and send every
/// write to backend 0, that old origin, where they would be lost. The
/// agent's start writes pgpool_status from the backends: node 2 is
/// believed (node 1 is no active member in node 2's catalog), backend 0
/// stays detached, writes go to the new origin.
#[test]
fn an_old_origin_back_after_a_failover_never_takes_writes() {
    let (cluster, mut slons) = served_cluster(2);
    let pool = Pgpool::for_slony(&cluster);
    let _notes = Notes::fresh("pgpool-slony-failover");
    let agent = || slony_agent(&cluster, &pool, "pgpool-slony-failover");
    agent().run("start").expect(Status::Success);
    write(&pool, 1).unwrap();
    assert!(has_row(&cluster, 1, 1));
    agent().run("stop").expect(Status::Success);

    slons[0].terminate(secs(20)).unwrap();
    cluster.node(1).stop_server("immediate");
    let failover = cluster
        .slonik(
            "failover (id = 1, backup node = 2);\ndrop node (id = 1, event node = 2);\n",
            secs(120),
        )
        .expect_success();
    eprintln!(
        "FAILOVER and DROP NODE: {:.1}s",
        failover.took.as_secs_f64()
    );
    cluster.node(1).start_server();
    assert_eq!(
        cluster.set_origin(1, SET),
        Some(1),
        "node 1 believes itself"
    );
    assert_eq!(cluster.set_origin(2, SET), Some(2));

    let _ = std::fs::remove_file(&pool.status_file);
    let start = agent().run("start").expect(Status::Success);
    eprintln!("{}", start.stderr);
    assert_eq!(
        std::fs::read_to_string(&pool.status_file).unwrap(),
        "down\nup\n"
    );
    assert_eq!(attached(&nodes_of(&pool)), [false, true]);
    write(&pool, 2).unwrap();
    assert!(has_row(&cluster, 2, 2), "the write went to the new origin");
    assert!(!has_row(&cluster, 1, 2), "the write went to the old origin");
    let monitor = agent().run("monitor").expect(Status::Success);
    assert_said(&monitor.stderr, &[], &["attach", "left as it is"]);
    assert_eq!(attached(&nodes_of(&pool)), [false, true]);
    agent().run("stop").expect(Status::Success);
}
