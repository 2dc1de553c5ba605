//! A real pgpool-II 4.3 configuration in front of a real PostgreSQL 15
//! primary (node 0, `node1`) and streaming standby (node 1, `node2`),
//! which the agent starts, and the agent with its parameters set for it.

#![allow(dead_code)]

use ocf::Deadline;
use std::time::Duration;
use tusk_pgpool::pcp::BackendStatus;
use tusk_pgpool::pcp::{Endpoint, NodeInfo, PcpConnection, PcpErrorKind};
use tusk_testkit::pgpool::{pg_ctl_stop, primary_and_standby, Pgpool, PCP_PASSWORD, PCP_USER};
use tusk_testkit::{wait_until, Agent, Instance};

pub const AGENT: &str = env!("CARGO_BIN_EXE_pgpool");

pub struct Setup {
    // Field order is drop order: pgpool goes before its backends.
    pub pool: Pgpool,
    pub primary: Instance,
    pub standby: Instance,
    /// OCF_RESOURCE_INSTANCE, one per test: the agent keeps notes under
    /// /run/tusk/<resource>.
    pub resource: String,
}

/// The cluster and a pgpool configuration for it (not started), with
/// `settings` appended to pgpool.conf.
pub fn setup(resource: &str, settings: &[(&str, &str)]) -> Setup {
    let (primary, standby) = primary_and_standby("node2");
    let pool = Pgpool::for_pair(&primary, &standby);
    for (name, value) in settings {
        pool.set(name, value);
    }
    let _ = std::fs::remove_dir_all(format!("/run/tusk/{resource}"));
    Setup {
        pool,
        primary,
        standby,
        resource: resource.to_string(),
    }
}

/// Asserts that `text` (what the agent logged) holds every one of
/// `needles`, and none of `never`.
#[track_caller]
pub fn assert_said(text: &str, needles: &[&str], never: &[&str]) {
    for needle in needles {
        assert!(text.contains(needle), "no {needle:?} in:\n{text}");
    }
    for word in never {
        assert!(!text.contains(word), "{word:?} in:\n{text}");
    }
}

/// The agent for `pool`'s configuration, as resource `resource`.
pub fn agent_for(pool: &Pgpool, resource: &str) -> Agent {
    pool.agent(AGENT, resource)
}

/// A PCP session with `pool`. pgpool restarts its PCP process after every
/// failover event (a detach, an attach, a promote), and a session that
/// arrives meanwhile is refused or closed before the salt: asked again,
/// as the agent's monitor does.
pub fn connect_pcp(pool: &Pgpool, deadline: &Deadline) -> PcpConnection {
    let endpoint = Endpoint::unix(&pool.socket_dir, pool.pcp_port);
    loop {
        match PcpConnection::connect(&endpoint, PCP_USER, PCP_PASSWORD, deadline) {
            Ok(c) => return c,
            Err(e)
                if matches!(e.kind, PcpErrorKind::Protocol | PcpErrorKind::Unreachable)
                    && !deadline.is_expired() =>
            {
                std::thread::sleep(Duration::from_millis(200))
            }
            Err(e) => panic!("PCP: {e}"),
        }
    }
}

/// pgpool's view of every node of `pool`, in a PCP session closed at once.
pub fn nodes_of(pool: &Pgpool) -> Vec<NodeInfo> {
    let d = Deadline::after(Duration::from_secs(10));
    let mut c = connect_pcp(pool, &d);
    let nodes = c.all_node_info(&d).unwrap();
    c.close(&d).unwrap();
    nodes
}

impl Setup {
    /// The agent with this configuration's parameters.
    pub fn agent(&self) -> Agent {
        agent_for(&self.pool, &self.resource)
    }

    pub fn main_pid(&self) -> Option<i32> {
        self.pool.main_pid()
    }

    pub fn pcp(&self) -> PcpConnection {
        PcpConnection::connect(
            &Endpoint::unix(&self.pool.socket_dir, self.pool.pcp_port),
            PCP_USER,
            PCP_PASSWORD,
            &Deadline::after(Duration::from_secs(10)),
        )
        .unwrap_or_else(|e| panic!("PCP: {e}"))
    }

    /// pgpool's view of every node, in a session closed at once.
    pub fn nodes(&self) -> Vec<NodeInfo> {
        nodes_of(&self.pool)
    }

    /// Waits (30 s) until pgpool's view of `node` satisfies `pred`.
    pub fn wait_node(&self, node: usize, what: &str, pred: impl Fn(&NodeInfo) -> bool) -> NodeInfo {
        let mut last = None;
        let ok = wait_until(Duration::from_secs(30), || {
            let n = self.nodes().swap_remove(node);
            let done = pred(&n);
            last = Some(n);
            done
        });
        assert!(
            ok,
            "node {node} never {what}: {last:?}\n{}",
            self.pool.log()
        );
        last.unwrap()
    }

    /// Stops `pg` (the primary or the standby, node `node`) and waits until
    /// pgpool has detached it.
    pub fn stop_backend(&self, pg: &Instance, node: usize) {
        pg_ctl_stop(pg);
        self.wait_node(node, "detached", |n| n.status == BackendStatus::Down);
    }

    /// Every process of this pgpool, as the fixture finds them.
    pub fn processes(&self) -> Vec<i32> {
        self.pool.processes().iter().map(|p| p.pid).collect()
    }

    /// Listening sockets bound under the configuration's directory.
    pub fn listeners(&self) -> Vec<ocf::process::UnixSocket> {
        let table = std::fs::read_to_string("/proc/net/unix").unwrap();
        ocf::process::parse_unix_sockets(&table)
            .into_iter()
            .filter(|s| s.listening && s.path.starts_with(&self.pool.dir))
            .collect()
    }

    /// What the agent logged (its stderr) for one call, for assertions on
    /// its log lines.
    pub fn assert_stopped(&self) {
        assert!(
            self.processes().is_empty(),
            "processes left: {:?}",
            self.pool.processes()
        );
        assert!(
            self.listeners().is_empty(),
            "listeners left: {:?}",
            self.listeners()
        );
    }
}
