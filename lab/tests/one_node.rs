//! A one-node cluster, as production runs one: corosync alone with its
//! single vote, quorate, stonith-enabled=true with the lab fence device. The
//! packaged `ocf:tusk:postgresql` runs there as a plain primitive on a
//! socket directory and port of its own; a killed postmaster is noticed by
//! the monitor and restarted in place; deleting the resource stops the
//! server; ending the lab leaves nothing running. And the only node, when a
//! stop fails, fences itself: the lab's power switch turns it off and on.
//! Needs the tusk-agents package installed (the nodes use the host's
//! /usr/lib/ocf), as ./run-tests cluster does.

mod common;

use std::time::{Duration, Instant};

use common::{holder, processes_of, sh, survivors, up, wait};
use tusk_lab::{postgres, Lab, FENCE_DEVICE};

const NODE: &str = "node1";
/// Not PostgreSQL's defaults, so that a server reached here proves the
/// agent passed both on. /run is a fresh tmpfs at every boot of a node: the
/// directory does not exist until the agent's start creates it.
const SOCKETDIR: &str = "/run/tusk-pg";
const PGPORT: &str = "5433";

#[test]
fn the_packaged_agent_runs_in_a_one_node_cluster_and_recovers_a_killed_postmaster() {
    let test = up("one-node", 1);
    let lab = &test.lab;

    // The cluster: one node, its own DC, quorate with the one vote it has,
    // fencing on and the lab device started.
    let view = lab.view(NODE).unwrap();
    assert_eq!(view.dc(), Some(NODE), "{view:?}");
    assert!(view.has_quorum(), "{view:?}");
    assert_eq!(view.online_nodes(), [NODE]);
    let quorum = sh(lab, NODE, &["corosync-quorumtool", "-s"]);
    for line in [
        "Quorate:          Yes",
        "Expected votes:   1",
        "Total votes:      1",
    ] {
        assert!(quorum.contains(line), "no {line:?} in {quorum}");
    }
    let enabled = sh(
        lab,
        NODE,
        &[
            "crm_attribute",
            "--type",
            "crm_config",
            "--name",
            "stonith-enabled",
            "--query",
            "--quiet",
        ],
    );
    assert_eq!(enabled.trim(), "true");
    assert!(view
        .instances(FENCE_DEVICE)
        .iter()
        .any(|r| r.active && !r.failed && r.nodes.iter().any(|n| n.name == NODE)));

    // The agent Pacemaker runs is the package's, not a copy left by hand.
    let owner = sh(lab, NODE, &["dpkg-query", "-S", postgres::AGENT]);
    assert!(owner.starts_with("tusk-agents:"), "{owner}");

    initdb_unix_socket_only(lab);
    // bindir is left out: the agent finds it from PG_VERSION.
    let create = Instant::now();
    sh(
        lab,
        NODE,
        &[
            "pcs",
            "resource",
            "create",
            postgres::RESOURCE,
            "ocf:tusk:postgresql",
            &format!("pgdata={}", postgres::PGDATA),
            &format!("socketdir={SOCKETDIR}"),
            &format!("pgport={PGPORT}"),
            "op",
            "monitor",
            "interval=5s",
            "timeout=20s",
        ],
    );
    wait(
        "pg started on node1 and answering on its socket",
        Duration::from_secs(60),
        || started_here(lab) && answers(lab),
    );
    eprintln!(
        "[one-node] FIGURE pcs resource create to the server answering: {:.1} s",
        create.elapsed().as_secs_f64()
    );
    let socket_owner = sh(lab, NODE, &["stat", "-c", "%U %F", SOCKETDIR]);
    assert_eq!(socket_owner.trim(), "postgres directory");
    let old = postmaster(lab).expect("pg is started but postmaster.pid names no postmaster");

    // kill -9: the monitor notices, Pacemaker stops and starts it in place.
    let init = holder(lab, NODE).init;
    sh(lab, NODE, &["kill", "-KILL", &old.to_string()]);
    let killed = Instant::now();
    wait(
        "pg recovered with a new postmaster after a failed monitor",
        Duration::from_secs(90),
        || {
            let failed_monitor = lab.view(NODE).is_ok_and(|v| {
                v.failures_of(postgres::RESOURCE)
                    .iter()
                    .any(|f| f.task == "monitor")
            });
            failed_monitor
                && started_here(lab)
                && postmaster(lab).is_some_and(|new| new != old)
                && answers(lab)
        },
    );
    eprintln!(
        "[one-node] FIGURE kill -9 of the postmaster to a new one answering: {:.1} s",
        killed.elapsed().as_secs_f64()
    );
    let view = lab.view(NODE).unwrap();
    let failures = view.failures_of(postgres::RESOURCE);
    assert!(
        failures.iter().all(|f| f.task == "monitor"),
        "only the monitor may have failed: {failures:?}"
    );
    // The stop of the crashed server succeeded: the node did not fence itself.
    assert_eq!(holder(lab, NODE).init, init, "node1 was rebooted");
    assert!(view.blocked().is_empty(), "{view:?}");

    let describe = sh(
        lab,
        NODE,
        &["pcs", "resource", "describe", "ocf:tusk:postgresql"],
    );
    for param in ["pgdata", "bindir", "pgport", "socketdir"] {
        assert!(
            describe.split_whitespace().any(|w| w.starts_with(param)),
            "pcs resource describe does not list {param}: {describe}"
        );
    }

    // Deleting the resource stops the server.
    let running = postmaster(lab).unwrap();
    let node_processes = processes_of(&holder(lab, NODE));
    sh(
        lab,
        NODE,
        &["pcs", "resource", "delete", postgres::RESOURCE],
    );
    wait("the postmaster to exit", Duration::from_secs(60), || {
        lab.exec(NODE, &["kill", "-0", &running.to_string()])
            .is_ok_and(|o| !o.status.success())
    });
    wait(
        "pg to leave the configuration",
        Duration::from_secs(30),
        || {
            lab.view(NODE)
                .is_ok_and(|v| v.instances(postgres::RESOURCE).is_empty())
        },
    );

    // Ending the lab ends everything that ran in the node, the servers'
    // processes among them.
    let dir = lab.dir().to_path_buf();
    lab.down().expect("down");
    assert_eq!(
        survivors(&node_processes),
        Vec::<i32>::new(),
        "processes of node1 left running"
    );
    assert!(!dir.exists(), "{} still exists", dir.display());
}

#[test]
fn the_only_node_fences_itself_when_a_stop_fails_and_comes_back() {
    let test = up("one-node-fencing", 1);
    let lab = &test.lab;
    // Pacemaker's Dummy sleeps op_sleep seconds in every operation: its
    // start and monitor get the time, its stop does not.
    sh(
        lab,
        NODE,
        &[
            "pcs",
            "resource",
            "create",
            "slow",
            "ocf:pacemaker:Dummy",
            "op_sleep=4",
            "op",
            "start",
            "timeout=30s",
            "op",
            "monitor",
            "interval=120s",
            "timeout=30s",
            "op",
            "stop",
            "timeout=1s",
        ],
    );
    wait("slow to run on node1", Duration::from_secs(60), || {
        lab.view(NODE)
            .is_ok_and(|v| v.nodes_in_role("slow", "Started") == [NODE])
    });
    let before = holder(lab, NODE);
    let processes = processes_of(&before);

    sh(lab, NODE, &["pcs", "resource", "disable", "slow"]);
    let disabled = Instant::now();
    // No other node could fence it: node1's own fencer ran fence_tusklab,
    // which died at the off; the power switch switched it on again.
    let fenced = wait(
        "node1 to be power-cycled for the failed stop",
        Duration::from_secs(60),
        || daemon_log(lab).contains("fence: reboot node1 from=node1: ok"),
    );
    assert_eq!(
        survivors(&processes),
        Vec::<i32>::new(),
        "node1 kept running"
    );
    let view = lab
        .wait_converged(Duration::from_secs(60))
        .expect("node1 online with quorum again");
    eprintln!(
        "[one-node-fencing] FIGURE disable to node1 fenced: {:.1} s; online with quorum again: {:.1} s",
        fenced.as_secs_f64(),
        disabled.elapsed().as_secs_f64()
    );
    assert_ne!(
        holder(lab, NODE).init,
        before.init,
        "node1 was not rebooted"
    );
    assert_eq!(view.online_nodes(), [NODE]);
    // After the reboot the disabled resource is stopped, the device runs.
    wait(
        "slow stopped and the fence device started after the reboot",
        Duration::from_secs(30),
        || {
            lab.view(NODE).is_ok_and(|v| {
                v.instances("slow").iter().all(|r| !r.active)
                    && v.instances(FENCE_DEVICE).iter().any(|r| r.active)
            })
        },
    );
}

/// A PostgreSQL 15 instance on node1's disk that listens on its unix socket
/// only: nothing here depends on the node's network.
fn initdb_unix_socket_only(lab: &Lab) {
    sh(
        lab,
        NODE,
        &[
            "install",
            "-d",
            "-o",
            "postgres",
            "-g",
            "postgres",
            "-m",
            "0700",
            postgres::PGDATA,
        ],
    );
    sh(
        lab,
        NODE,
        &[
            "runuser",
            "-u",
            "postgres",
            "--",
            &format!("{}/initdb", postgres::BINDIR),
            "--no-sync",
            "--auth-local=peer",
            "--auth-host=reject",
            "-D",
            postgres::PGDATA,
        ],
    );
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .open(postgres::data_file(lab, NODE, "postgresql.conf"))
        .and_then(|mut f| f.write_all(b"listen_addresses = ''\n"))
        .expect("appending to postgresql.conf");
}

/// pg is Started, on node1, not failed, as node1's Pacemaker sees it.
fn started_here(lab: &Lab) -> bool {
    lab.view(NODE).is_ok_and(|v| {
        let instances = v.instances(postgres::RESOURCE);
        instances.len() == 1
            && instances[0].role == "Started"
            && instances[0].active
            && !instances[0].failed
            && instances[0]
                .nodes
                .iter()
                .map(|n| n.name.as_str())
                .eq([NODE])
    })
}

/// The server answers a query on the socket directory and port given to the
/// agent.
fn answers(lab: &Lab) -> bool {
    let psql = format!("{}/psql", postgres::BINDIR);
    lab.exec(
        NODE,
        &[
            "runuser",
            "-u",
            "postgres",
            "--",
            &psql,
            "-h",
            SOCKETDIR,
            "-p",
            PGPORT,
            "-d",
            "postgres",
            "-XAtc",
            "select 42",
        ],
    )
    .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == "42")
}

/// The PID in postmaster.pid (in node1's PID namespace), but only if that
/// process is a postgres of this data directory: a PID alone proves nothing
/// (a stale file may name any process).
fn postmaster(lab: &Lab) -> Option<i32> {
    let pid = postgres::postmaster_pid(lab, NODE).ok()??;
    let out = lab
        .exec(NODE, &["cat", &format!("/proc/{pid}/cmdline")])
        .ok()?;
    let cmdline = String::from_utf8_lossy(&out.stdout).replace('\0', " ");
    (out.status.success() && cmdline.contains("postgres") && cmdline.contains(postgres::PGDATA))
        .then_some(pid)
}

fn daemon_log(lab: &Lab) -> String {
    std::fs::read_to_string(lab.dir().join("fence-daemon.log")).unwrap_or_default()
}
