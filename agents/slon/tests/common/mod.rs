//! What the agent's tests share: the agent run against a node of a real
//! Slony-I cluster, and what the test looks at afterwards.

#![allow(dead_code)]

use ocf::process::ProcInfo;
use ocf::Deadline;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;
use tusk_testkit::slony::SlonyCluster;
use tusk_testkit::{postgres_user, Agent, Guard};

pub const BIN: &str = env!("CARGO_BIN_EXE_slon");

pub fn secs(n: u64) -> Deadline {
    Deadline::after(Duration::from_secs(n))
}

/// The agent for `node` of `cluster`: its own pid and log files in the
/// cluster's directory, a resource name of its own (the agent keeps notes
/// under /run/tusk/RESOURCE), and the fixture's fast polling options.
pub fn agent(cluster: &SlonyCluster, node: u32) -> Agent {
    let root = cluster.root();
    let tag = root.file_name().unwrap().to_string_lossy().into_owned();
    Agent::new(BIN)
        .env("OCF_RESOURCE_INSTANCE", &format!("{tag}-n{node}"))
        .param("cluster_name", cluster.name().as_str())
        .param("conninfo", cluster.node(node).conninfo())
        .param("pidfile", root.join(format!("agent-{node}.pid")))
        .param("logfile", root.join(format!("agent-{node}.log")))
        .param("options", "-s 500 -t 1000")
}

/// A probe: a monitor with interval 0.
pub fn probe(a: Agent) -> tusk_testkit::Outcome {
    a.env("OCF_RESKEY_CRM_meta_interval", "0").run("monitor")
}

/// A recurring monitor (interval 10 s).
pub fn monitor(a: Agent) -> tusk_testkit::Outcome {
    a.env("OCF_RESKEY_CRM_meta_interval", "10000")
        .run("monitor")
}

/// The slon processes that serve `node` as this resource's: the binary
/// with this cluster and this node's conninfo on the command line.
pub fn slons_of(cluster: &SlonyCluster, node: u32) -> Vec<ProcInfo> {
    let conninfo = cluster.node(node).conninfo();
    cluster
        .slon_processes()
        .into_iter()
        .filter(|p| p.cmdline.iter().any(|a| a.to_string_lossy() == conninfo))
        .collect()
}

/// The backends of `node`'s database that slon connections of the node's
/// own slon have (`slon.local_*`, `slon.remoteWorkerThread_*`).
pub fn own_slon_backends(cluster: &SlonyCluster, node: u32) -> Vec<String> {
    cluster
        .node(node)
        .query(
            "SELECT application_name FROM pg_stat_activity WHERE application_name LIKE 'slon.local%' \
             OR application_name LIKE 'slon.remoteWorker%' ORDER BY 1",
        )
        .into_iter()
        .filter_map(|r| r[0].clone())
        .collect()
}

/// The lock row's PID and the application_name of the backend it names.
pub fn lock_holder(cluster: &SlonyCluster, node: u32) -> Option<(i32, Option<String>)> {
    cluster
        .node(node)
        .query(&format!(
            "SELECT l.nl_backendpid, a.application_name FROM {}.sl_nodelock l \
             LEFT JOIN pg_stat_activity a ON a.pid = l.nl_backendpid \
             WHERE l.nl_nodeid = {node} AND l.nl_conncnt = 0",
            cluster.schema_sql()
        ))
        .first()
        .map(|r| (r[0].as_deref().unwrap().parse().unwrap(), r[1].clone()))
}

/// Inserts (or replaces) `node`'s lock row so that it names `pid`.
pub fn plant_lock(cluster: &SlonyCluster, node: u32, pid: i32) {
    cluster.node(node).query(&format!(
        "DELETE FROM {s}.sl_nodelock WHERE nl_nodeid = {node} AND nl_conncnt = 0; \
         INSERT INTO {s}.sl_nodelock VALUES ({node}, 0, {pid})",
        s = cluster.schema_sql()
    ));
}

/// `sleep 600` as `uid`/`gid`: a live process that is no backend.
pub fn sleeper(uid: u32, gid: u32) -> Guard {
    Guard(
        Command::new("/usr/bin/sleep")
            .arg("600")
            .uid(uid)
            .gid(gid)
            .spawn()
            .unwrap(),
    )
}

pub fn postgres_sleeper() -> Guard {
    let pg = postgres_user();
    sleeper(pg.uid.as_raw(), pg.gid.as_raw())
}

/// Asserts that nothing of `node`'s slon is left: no process, no backend
/// of its own connections, no lock row.
#[track_caller]
pub fn assert_nothing_left(cluster: &SlonyCluster, node: u32) {
    assert_eq!(slons_of(cluster, node), Vec::new(), "slon processes left");
    assert_eq!(
        own_slon_backends(cluster, node),
        Vec::<String>::new(),
        "backends left"
    );
    assert_eq!(lock_holder(cluster, node), None, "lock row left");
}

/// Removes the notes the agent kept for this cluster's resources
/// (/run/tusk/RESOURCE) when the test ends, pass or fail.
pub struct Notes(String);

impl Drop for Notes {
    fn drop(&mut self) {
        for node in 1..=4 {
            let _ = std::fs::remove_dir_all(format!("/run/tusk/{}-n{node}", self.0));
        }
    }
}

pub fn notes_of(cluster: &SlonyCluster) -> Notes {
    Notes(
        cluster
            .root()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned(),
    )
}
