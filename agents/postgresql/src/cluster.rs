//! What this agent tells the cluster and reads from it, beyond the generic
//! promotion scores and publish-on-change of the core's
//! [`NodeAttributes`]: `pg-timeline`, `pg-sync`, and the private `pg-lsn`
//! and `pg-demote`, named after the resource.

use crate::wal::Position;
use ocf::attributes::NodeAttributes;
use ocf::{Deadline, OcfEnv, Result};
use std::collections::BTreeMap;

pub struct Cluster {
    attributes: NodeAttributes,
}

/// The generic half (scores, publishing, notes) is the core's.
impl std::ops::Deref for Cluster {
    type Target = NodeAttributes;
    fn deref(&self) -> &NodeAttributes {
        &self.attributes
    }
}

impl Cluster {
    pub fn new(env: &OcfEnv) -> Cluster {
        Cluster {
            attributes: NodeAttributes::new(&env.instance, &env.node_name()),
        }
    }

    /// The timeline this node is on, for every node to compare with.
    pub fn publish_timeline(&self, timeline: u32, deadline: &Deadline) -> Result<()> {
        self.publish("timeline", Some(&timeline.to_string()), false, deadline)
    }

    /// `sync` or `async`: whether the primary waits for a standby.
    pub fn publish_sync(&self, mode: Option<&str>, deadline: &Deadline) -> Result<()> {
        self.publish("sync", mode, false, deadline)
    }

    /// No `sync` on this node, whatever this node remembers publishing: a
    /// primary that stops being one (demote, stop) takes it away.
    pub fn publish_sync_gone(&self, deadline: &Deadline) -> Result<()> {
        self.publish_fresh("sync", None, false, deadline)
    }

    /// This candidate's WAL position, at pre-promote and while no primary
    /// runs (`None` removes it). A note says it is out there, so that a
    /// streaming standby's monitor removes a leftover without a fork when
    /// there is none.
    pub fn publish_position(&self, position: Option<Position>, deadline: &Deadline) -> Result<()> {
        let value = position.map(|p| p.to_string());
        self.publish_fresh("lsn", value.as_deref(), true, deadline)?;
        self.keep_note("position-published", value.as_deref());
        Ok(())
    }

    /// Removes this node's position if it published one: a position left
    /// from a no-primary period could be compared later as if current.
    pub fn withdraw_position(&self, deadline: &Deadline) -> Result<()> {
        if self.note("position-published").is_none() {
            return Ok(());
        }
        self.publish_position(None, deadline)
    }

    /// The record, kept in the CIB beyond this node's loss, of whether this
    /// primary's commits wait for a standby: `TIMELINE:sync` or
    /// `TIMELINE:async`.
    pub fn publish_primary_sync(
        &self,
        timeline: u32,
        synchronous: bool,
        deadline: &Deadline,
    ) -> Result<()> {
        let mode = if synchronous { "sync" } else { "async" };
        self.publish_permanent("primary-sync", &format!("{timeline}:{mode}"), deadline)
    }

    pub fn primary_sync_records(&self, deadline: &Deadline) -> Result<BTreeMap<String, String>> {
        self.permanent_everywhere("primary-sync", deadline)
    }

    /// Where this former primary's shutdown checkpoint is, after a demote.
    pub fn publish_demoted_at(
        &self,
        checkpoint: Option<Position>,
        deadline: &Deadline,
    ) -> Result<()> {
        let value = checkpoint.map(|p| p.to_string());
        self.publish_fresh("demote", value.as_deref(), true, deadline)
    }

    pub fn timelines(&self, deadline: &Deadline) -> Result<BTreeMap<String, String>> {
        self.everywhere("timeline", deadline)
    }

    pub fn positions(&self, deadline: &Deadline) -> Result<BTreeMap<String, Position>> {
        self.parsed("lsn", deadline)
    }

    pub fn demoted_at(&self, deadline: &Deadline) -> Result<BTreeMap<String, Position>> {
        self.parsed("demote", deadline)
    }

    fn parsed(&self, what: &str, deadline: &Deadline) -> Result<BTreeMap<String, Position>> {
        Ok(self
            .everywhere(what, deadline)?
            .into_iter()
            .filter_map(|(node, v)| Some((node, v.parse().ok()?)))
            .collect())
    }

    /// The candidates of the coming promotion, recorded by the node to be
    /// promoted at pre-promote, for promote to compare with.
    pub fn set_candidates(&self, nodes: &[String]) {
        let joined = nodes.join(" ");
        self.keep_note("candidates", (!nodes.is_empty()).then_some(joined.as_str()));
    }

    pub fn candidates(&self) -> Vec<String> {
        self.note("candidates")
            .map(|v| v.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default()
    }
}
