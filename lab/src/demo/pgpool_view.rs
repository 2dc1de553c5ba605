//! pgpool's view of its backends, as the demo tells it: for every node,
//! whether Pacemaker runs pgpool there (crm_mon), whether it answers a
//! client, and what it does with each backend (`SHOW pool_nodes` through
//! it, asked from the switch as any client would).
//!
//! One [`Watcher`] per node keeps one client session to that pgpool and
//! asks every 200 ms: never more than one connection per pgpool from the
//! demo (a pgpool that holds new clients during its primary search would
//! otherwise pile them up and take its children from the real client),
//! and the narration loop never waits for a pgpool that does not answer.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::narrate::{
    self, Facts, CABLE, NOT_RUNNING, PGPOOL, PGPOOL_ANSWERS, PGPOOL_BACKENDS, PGPOOL_VIEW, POWER,
};
use super::Probe;
use crate::pgpool::{self, PoolNode, PoolView, Watcher};
use crate::{ClusterState, Lab};

/// A new connection that waits this long is held by pgpool.
const HELD: Duration = Duration::from_secs(1);

/// How long a new watcher may take to bring its first answer.
const FIRST_ANSWER: Duration = Duration::from_secs(3);

/// Adds pgpool's facts for `nodes` (the nodes that run the pgpool clone).
pub struct PgpoolProbe {
    nodes: Vec<String>,
    watchers: Mutex<BTreeMap<String, Watcher>>,
}

impl PgpoolProbe {
    pub fn new(nodes: &[String]) -> PgpoolProbe {
        PgpoolProbe {
            nodes: nodes.to_vec(),
            watchers: Mutex::default(),
        }
    }
}

impl Drop for PgpoolProbe {
    fn drop(&mut self) {
        // A watcher stuck in a question to a pgpool that holds new clients
        // must not hold up the command's end.
        let watchers = std::mem::take(&mut *self.watchers.lock().expect("watchers"));
        for (_, watcher) in watchers {
            watcher.detach();
        }
    }
}

impl Probe for PgpoolProbe {
    fn observe(&self, lab: &Lab, view: &ClusterState, facts: &mut Facts) {
        let Ok(names) = pgpool::names(lab) else {
            return;
        };
        let mut watchers = self.watchers.lock().expect("watchers");
        let mut ask = Vec::new();
        for node in &self.nodes {
            let Some(runs) = runs(view, node) else {
                continue;
            };
            facts.set(node, PGPOOL, runs.clone());
            if let Some(summary) = view.attribute(node, pgpool::ATTR_BACKENDS) {
                facts.set(node, PGPOOL_BACKENDS, summary);
            }
            let reachable =
                facts.get(node, POWER) == Some("on") && facts.get(node, CABLE) != Some("out");
            if runs != "running" {
                facts.set(node, PGPOOL_ANSWERS, NOT_RUNNING);
                facts.set(node, PGPOOL_VIEW, NOT_RUNNING);
            } else if reachable {
                if !watchers.contains_key(node) {
                    match Watcher::start(lab, node) {
                        Ok(w) => {
                            watchers.insert(node.clone(), w);
                        }
                        Err(_) => continue,
                    }
                }
                ask.push(node.clone());
            }
        }
        // New watchers bring their first answer (or failure) within a
        // connection's time.
        let deadline = Instant::now() + FIRST_ANSWER;
        while Instant::now() < deadline
            && ask
                .iter()
                .any(|n| watchers.get(n).is_some_and(|w| w.latest().is_none()))
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        for node in &ask {
            let Some(seen) = watchers.get(node).and_then(Watcher::latest) else {
                continue;
            };
            let waiting = watchers
                .get(node)
                .and_then(Watcher::connecting_for)
                .is_some_and(|d| d >= HELD);
            match seen.view {
                Some(pool) => {
                    facts.set(node, PGPOOL_ANSWERS, "yes");
                    facts.set(node, PGPOOL_VIEW, view_value(&pool, &names));
                }
                None => facts.set(node, PGPOOL_ANSWERS, answers(&seen.line, waiting)),
            }
        }
    }
}

/// The [`PGPOOL_ANSWERS`] value of a pgpool that did not answer (`why`:
/// the watcher's line, `no answer: ERROR`): `waits` when a new connection
/// has been waiting (pgpool holds new clients while it fails over),
/// `closed` when it closed the session it had, else `no: ERROR`, shortened.
fn answers(why: &str, waiting: bool) -> String {
    if waiting {
        "waits".to_string()
    } else if why.contains("closed") || why.contains("terminating connection") {
        "closed".to_string()
    } else {
        let error = why.strip_prefix("no answer: ").unwrap_or(why);
        format!("no: {}", narrate::short_error(error))
    }
}

/// pgpool on `node` as the observer's crm_mon has it: `running`,
/// `stopped`, or the transition in progress; None for a node that is lost
/// (not fenced yet: what runs there is unknown).
fn runs(view: &ClusterState, node: &str) -> Option<String> {
    let member = view.node(node)?;
    if !member.online {
        return (!member.unclean).then(|| "stopped".to_string());
    }
    let mut state = "stopped".to_string();
    for instance in view.instances(pgpool::RESOURCE) {
        if instance.nodes.iter().any(|n| n.name == node) {
            let role = match instance.role.as_str() {
                "Started" => "running".to_string(),
                other => other.to_lowercase(),
            };
            state = if instance.failed {
                format!("{role} (failed)")
            } else {
                role
            };
        }
    }
    Some(state)
}

/// The [`PGPOOL_VIEW`] value of what one pgpool showed: backends by node
/// name (`names`: by address) in pgpool's node id order.
pub fn view_value(pool: &PoolView, names: &BTreeMap<String, String>) -> String {
    let backends: Vec<(String, String)> = pool
        .nodes
        .iter()
        .map(|n| {
            let name = names.get(&n.hostname).unwrap_or(&n.hostname).clone();
            (name, backend_state(n))
        })
        .collect();
    narrate::pool_view(&backends)
}

/// What pgpool does with one backend: `down` (detached: no client is sent
/// there), else its role for pgpool, with the server's own when that
/// differs (a promotion pgpool has not followed yet).
fn backend_state(node: &PoolNode) -> String {
    if !node.is_attached() {
        return "down".to_string();
    }
    let live = matches!(node.pg_role.as_str(), "primary" | "standby");
    if live && node.pg_role != node.role {
        format!("{} (server: {})", node.role, node.pg_role)
    } else {
        node.role.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: u32, host: &str, status: &str, role: &str, pg_role: &str) -> PoolNode {
        PoolNode {
            node_id: id,
            hostname: host.into(),
            status: status.into(),
            pg_status: "up".into(),
            role: role.into(),
            pg_role: pg_role.into(),
            replication_state: String::new(),
        }
    }

    #[test]
    fn a_pgpool_that_does_not_answer_says_how() {
        assert_eq!(answers("no answer: connection closed", false), "closed");
        assert_eq!(answers("no answer: connection closed", true), "waits");
        assert_eq!(
            answers(
                "no answer: db error: FATAL: unable to read data from DB node 1",
                false
            ),
            "no: FATAL: unable to read data from DB node 1"
        );
    }

    #[test]
    fn a_view_names_each_backend_and_what_pgpool_does_with_it() {
        let names = BTreeMap::from([
            ("10.0.0.11".to_string(), "node1".to_string()),
            ("10.0.0.12".to_string(), "node2".to_string()),
        ]);
        let pool = PoolView {
            nodes: vec![
                node(0, "10.0.0.11", "down", "primary", "unknown"),
                node(1, "10.0.0.12", "up", "standby", "primary"),
                node(2, "10.0.0.13", "waiting", "standby", "standby"),
            ],
        };
        let value = view_value(&pool, &names);
        assert_eq!(
            value,
            "node1 down, node2 standby (server: primary), 10.0.0.13 standby"
        );
        assert_eq!(
            narrate::parse_pool_view(&value),
            vec![
                ("node1", "down"),
                ("node2", "standby (server: primary)"),
                ("10.0.0.13", "standby")
            ]
        );
    }
}
