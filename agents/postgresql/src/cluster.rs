//! What this agent tells the cluster and reads from it: promotion scores
//! and node attributes named after the resource (`pg-timeline`, `pg-sync`,
//! and the private `pg-lsn` and `pg-demote`), each written only when its
//! value changes.

use crate::wal::Position;
use ocf::attributes::{self, Published, Score};
use ocf::{Deadline, OcfEnv, Result};
use std::collections::BTreeMap;

pub struct Cluster {
    pub resource: String,
    pub node: String,
    published: Published,
}

impl Cluster {
    pub fn new(env: &OcfEnv) -> Cluster {
        Cluster {
            resource: attributes::resource_of(&env.instance).to_string(),
            node: env.node_name(),
            published: Published::new(&env.instance),
        }
    }

    fn attribute(&self, what: &str) -> String {
        format!("{}-{what}", self.resource)
    }

    /// Sets `node`'s promotion score unless this node already set it to
    /// that. `connection` names what the score was computed for (a
    /// walsender): a new one means the standby reconnected, and its score
    /// may have been deleted meanwhile by its own start or stop.
    pub fn set_score(
        &self,
        node: &str,
        score: Option<Score>,
        connection: &str,
        deadline: &Deadline,
    ) -> Result<()> {
        let key = format!("score-{node}");
        let value = match score {
            Some(s) => format!("{s}@{connection}"),
            None => format!("none@{connection}"),
        };
        if self.published.is_current(&key, &value) {
            return Ok(());
        }
        attributes::set_promotion_score(&self.resource, node, score, deadline)?;
        self.published.record(&key, &value);
        Ok(())
    }

    /// Nodes this node gave a score, for forgetting those that left.
    pub fn scored_nodes(&self) -> Vec<String> {
        self.published
            .entries("score-")
            .into_iter()
            .map(|(node, _)| node)
            .collect()
    }

    pub fn forget_score(&self, node: &str) {
        self.published.forget(&format!("score-{node}"));
    }

    /// Deletes this node's score whatever any node recorded.
    pub fn clear_own_score(&self, deadline: &Deadline) -> Result<()> {
        attributes::set_promotion_score(&self.resource, &self.node, None, deadline)?;
        self.published.forget(&format!("score-{}", self.node));
        Ok(())
    }

    fn publish(
        &self,
        what: &str,
        value: Option<&str>,
        private: bool,
        deadline: &Deadline,
    ) -> Result<()> {
        let key = format!("attr-{what}");
        let shown = value.unwrap_or("");
        if self.published.is_current(&key, shown) {
            return Ok(());
        }
        attributes::set_node_attribute(
            &self.attribute(what),
            &self.node,
            value,
            private,
            deadline,
        )?;
        self.published.record(&key, shown);
        Ok(())
    }

    /// The timeline this node is on, for every node to compare with.
    pub fn publish_timeline(&self, timeline: u32, deadline: &Deadline) -> Result<()> {
        self.publish("timeline", Some(&timeline.to_string()), false, deadline)
    }

    /// `sync` or `async`: whether the primary waits for a standby.
    pub fn publish_sync(&self, mode: Option<&str>, deadline: &Deadline) -> Result<()> {
        self.publish("sync", mode, false, deadline)
    }

    /// This candidate's WAL position, at pre-promote.
    pub fn publish_position(&self, position: Option<Position>, deadline: &Deadline) -> Result<()> {
        let value = position.map(|p| p.to_string());
        // Always written: candidates compare fresh values.
        self.published.forget("attr-lsn");
        self.publish("lsn", value.as_deref(), true, deadline)
    }

    /// Where this former primary's shutdown checkpoint is, after a demote.
    pub fn publish_demoted_at(
        &self,
        checkpoint: Option<Position>,
        deadline: &Deadline,
    ) -> Result<()> {
        let value = checkpoint.map(|p| p.to_string());
        self.published.forget("attr-demote");
        self.publish("demote", value.as_deref(), true, deadline)
    }

    pub fn timelines(&self, deadline: &Deadline) -> Result<BTreeMap<String, String>> {
        attributes::node_attribute_everywhere(&self.attribute("timeline"), deadline)
    }

    pub fn positions(&self, deadline: &Deadline) -> Result<BTreeMap<String, Position>> {
        self.parsed("lsn", deadline)
    }

    pub fn demoted_at(&self, deadline: &Deadline) -> Result<BTreeMap<String, Position>> {
        self.parsed("demote", deadline)
    }

    fn parsed(&self, what: &str, deadline: &Deadline) -> Result<BTreeMap<String, Position>> {
        Ok(
            attributes::node_attribute_everywhere(&self.attribute(what), deadline)?
                .into_iter()
                .filter_map(|(node, v)| Some((node, v.parse().ok()?)))
                .collect(),
        )
    }

    /// The candidates of the coming promotion, recorded by the node to be
    /// promoted at pre-promote, for promote to compare with.
    pub fn set_candidates(&self, nodes: &[String]) {
        if nodes.is_empty() {
            self.published.forget("candidates");
        } else {
            self.published.record("candidates", &nodes.join(" "));
        }
    }

    pub fn candidates(&self) -> Vec<String> {
        self.published
            .read("candidates")
            .map(|v| v.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default()
    }
}
