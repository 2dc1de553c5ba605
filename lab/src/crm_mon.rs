//! The cluster as one node's Pacemaker reports it (`crm_mon --one-shot
//! --output-as=xml`), parsed, not grepped: what the lab waits for and what
//! scenario tests assert on.

use anyhow::{Context, Result};
use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename = "pacemaker-result")]
pub struct ClusterState {
    pub summary: Summary,
    #[serde(default)]
    pub nodes: Nodes,
    #[serde(default)]
    pub resources: Resources,
    #[serde(default)]
    pub node_attributes: NodeAttributes,
    #[serde(default)]
    pub failures: Failures,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Summary {
    pub current_dc: CurrentDc,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct CurrentDc {
    #[serde(rename = "@present")]
    pub present: bool,
    #[serde(rename = "@name", default)]
    pub name: Option<String>,
    #[serde(rename = "@with_quorum", default)]
    pub with_quorum: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Nodes {
    #[serde(rename = "node", default)]
    pub list: Vec<Node>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Node {
    #[serde(rename = "@name")]
    pub name: String,
    #[serde(rename = "@online")]
    pub online: bool,
    #[serde(rename = "@unclean")]
    pub unclean: bool,
    #[serde(rename = "@standby", default)]
    pub standby: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Resources {
    #[serde(rename = "$value", default)]
    pub items: Vec<ResourceItem>,
}

/// Top-level entries: a primitive, or a clone or group of primitives.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResourceItem {
    Resource(Resource),
    Clone(Collection),
    Group(Collection),
    #[serde(other)]
    Other,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Collection {
    #[serde(rename = "@id")]
    pub id: String,
    #[serde(rename = "resource", default)]
    pub resources: Vec<Resource>,
}

/// One instance of a resource, as crm_mon lists it.
#[derive(Debug, Clone, Deserialize)]
pub struct Resource {
    #[serde(rename = "@id")]
    pub id: String,
    #[serde(rename = "@resource_agent")]
    pub agent: String,
    /// Started, Stopped, Promoted, Unpromoted, Starting...
    #[serde(rename = "@role")]
    pub role: String,
    #[serde(rename = "@active")]
    pub active: bool,
    #[serde(rename = "@blocked", default)]
    pub blocked: bool,
    #[serde(rename = "@failed", default)]
    pub failed: bool,
    #[serde(rename = "@managed", default = "yes")]
    pub managed: bool,
    #[serde(rename = "node", default)]
    pub nodes: Vec<NodeRef>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct NodeRef {
    #[serde(rename = "@name")]
    pub name: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct NodeAttributes {
    #[serde(rename = "node", default)]
    pub nodes: Vec<AttributeNode>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AttributeNode {
    #[serde(rename = "@name")]
    pub name: String,
    #[serde(rename = "attribute", default)]
    pub attributes: Vec<Attribute>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Attribute {
    #[serde(rename = "@name")]
    pub name: String,
    #[serde(rename = "@value")]
    pub value: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Failures {
    #[serde(rename = "failure", default)]
    pub list: Vec<Failure>,
}

/// A failed operation Pacemaker remembers (until a cleanup).
#[derive(Debug, Clone, Deserialize)]
pub struct Failure {
    #[serde(rename = "@op_key")]
    pub op_key: String,
    #[serde(rename = "@node")]
    pub node: String,
    #[serde(rename = "@exitcode")]
    pub exitcode: i32,
    #[serde(rename = "@exitreason", default)]
    pub exitreason: String,
    #[serde(rename = "@task")]
    pub task: String,
}

fn yes() -> bool {
    true
}

impl ClusterState {
    pub fn parse(xml: &str) -> Result<ClusterState> {
        quick_xml::de::from_str(xml).context("parsing crm_mon --output-as=xml")
    }

    /// The elected DC, if one is present.
    pub fn dc(&self) -> Option<&str> {
        let dc = &self.summary.current_dc;
        dc.name.as_deref().filter(|_| dc.present)
    }

    /// Whether the partition of the node that answered has quorum.
    pub fn has_quorum(&self) -> bool {
        self.summary.current_dc.present && self.summary.current_dc.with_quorum
    }

    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.list.iter().find(|n| n.name == name)
    }

    /// Online in this view (a node it does not list is not).
    pub fn is_online(&self, name: &str) -> bool {
        self.node(name).is_some_and(|n| n.online)
    }

    pub fn online_nodes(&self) -> Vec<&str> {
        self.nodes
            .list
            .iter()
            .filter(|n| n.online)
            .map(|n| n.name.as_str())
            .collect()
    }

    /// Every instance of the primitive `id`, alone or inside a clone or group.
    pub fn instances(&self, id: &str) -> Vec<&Resource> {
        let mut found = Vec::new();
        for item in &self.resources.items {
            match item {
                ResourceItem::Resource(r) if r.id == id => found.push(r),
                ResourceItem::Clone(c) | ResourceItem::Group(c) => {
                    found.extend(c.resources.iter().filter(|r| r.id == id))
                }
                _ => {}
            }
        }
        found
    }

    /// The nodes where `id` runs in `role` (Started, Promoted, Unpromoted).
    pub fn nodes_in_role(&self, id: &str, role: &str) -> Vec<&str> {
        self.instances(id)
            .into_iter()
            .filter(|r| r.active && r.role == role)
            .flat_map(|r| r.nodes.iter().map(|n| n.name.as_str()))
            .collect()
    }

    /// Resources Pacemaker gave up on ("blocked"): an operator would have to step in.
    pub fn blocked(&self) -> Vec<&Resource> {
        let all = self.resources.items.iter().flat_map(|item| match item {
            ResourceItem::Resource(r) => std::slice::from_ref(r),
            ResourceItem::Clone(c) | ResourceItem::Group(c) => c.resources.as_slice(),
            ResourceItem::Other => &[],
        });
        all.filter(|r| r.blocked).collect()
    }

    pub fn attribute(&self, node: &str, name: &str) -> Option<&str> {
        self.node_attributes
            .nodes
            .iter()
            .find(|n| n.name == node)?
            .attributes
            .iter()
            .find(|a| a.name == name)
            .map(|a| a.value.as_str())
    }

    pub fn failures_of(&self, id: &str) -> Vec<&Failure> {
        let prefix = format!("{id}_");
        self.failures
            .list
            .iter()
            .filter(|f| f.op_key.starts_with(&prefix))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured from a real Pacemaker 2.1.5 single-node cluster after the
    /// postmaster was killed and recovered.
    const SAMPLE: &str = include_str!("../tests/data/crm_mon.xml");

    #[test]
    fn parses_nodes_quorum_and_roles() {
        let s = ClusterState::parse(SAMPLE).unwrap();
        assert!(s.has_quorum());
        assert_eq!(s.summary.current_dc.name.as_deref(), Some("node1"));
        assert_eq!(s.online_nodes(), ["node1"]);
        assert_eq!(s.nodes_in_role("pg", "Started"), ["node1"]);
        assert_eq!(s.nodes_in_role("pgc", "Promoted"), ["node1"]);
        assert!(s.nodes_in_role("pgc", "Unpromoted").is_empty());
        assert!(s.blocked().is_empty());
    }

    #[test]
    fn parses_attributes_and_failures() {
        let s = ClusterState::parse(SAMPLE).unwrap();
        assert_eq!(s.attribute("node1", "tusk-timeline"), Some("3"));
        assert_eq!(s.attribute("node1", "master-pgc"), Some("10"));
        assert_eq!(s.attribute("node2", "tusk-timeline"), None);
        let f = s.failures_of("pg");
        assert_eq!(f.len(), 1);
        assert_eq!(
            (f[0].exitcode, f[0].task.as_str(), f[0].node.as_str()),
            (7, "monitor", "node1")
        );
        assert!(s.failures_of("pgc").is_empty());
    }

    #[test]
    fn blocked_instances_inside_clones_are_found() {
        let xml = SAMPLE.replace(
            r#"resource_agent="ocf:pacemaker:Stateful" role="Promoted" active="true" orphaned="false" blocked="false""#,
            r#"resource_agent="ocf:pacemaker:Stateful" role="Promoted" active="true" orphaned="false" blocked="true""#,
        );
        let s = ClusterState::parse(&xml).unwrap();
        let blocked: Vec<&str> = s.blocked().iter().map(|r| r.id.as_str()).collect();
        assert_eq!(blocked, ["pgc"]);
    }

    /// Abridged from Pacemaker 2.1.5, three nodes, node3 lost and not yet fenced.
    const THREE_NODES: &str = r#"<pacemaker-result api-version="2.25" request="crm_mon --one-shot --output-as=xml">
  <summary>
    <stack type="corosync"/>
    <current_dc present="true" version="2.1.5-a3f44794f94" name="node1" id="1" with_quorum="true" mixed_version="false"/>
    <nodes_configured number="3"/>
  </summary>
  <nodes>
    <node name="node1" id="1" online="true" standby="false" pending="false" unclean="false" is_dc="true" type="member"/>
    <node name="node2" id="2" online="true" standby="false" pending="false" unclean="false" is_dc="false" type="member"/>
    <node name="node3" id="3" online="false" standby="false" pending="false" unclean="true" is_dc="false" type="member"/>
  </nodes>
  <resources>
    <resource id="lab-fence" resource_agent="stonith:fence_tusklab" role="Started" active="true" orphaned="false" blocked="false" managed="true" failed="false" nodes_running_on="1">
      <node name="node2" id="2" cached="true"/>
    </resource>
    <resource id="idle" resource_agent="ocf:pacemaker:Dummy" role="Stopped" active="false" failed="false" nodes_running_on="0"/>
  </resources>
  <status code="0" message="OK"/>
</pacemaker-result>"#;

    #[test]
    fn membership_and_placement_of_three_nodes_are_read() {
        let s = ClusterState::parse(THREE_NODES).unwrap();
        assert_eq!(s.dc(), Some("node1"));
        assert!(s.has_quorum());
        assert!(s.is_online("node1") && s.is_online("node2") && !s.is_online("node3"));
        assert!(s.node("node3").unwrap().unclean);
        assert_eq!(s.nodes_in_role("lab-fence", "Started"), ["node2"]);
        assert!(s.instances("idle").iter().all(|r| !r.active));
        assert_eq!(
            s.nodes.list.len(),
            3,
            "resource placement is not a cluster node"
        );
    }

    #[test]
    fn an_error_message_is_not_a_cluster_state() {
        assert!(
            ClusterState::parse("crm_mon: Error: cluster is not available on this node").is_err()
        );
    }

    #[test]
    fn a_cluster_without_quorum_or_dc_says_so() {
        let xml = SAMPLE.replace(r#"with_quorum="true""#, r#"with_quorum="false""#);
        assert!(!ClusterState::parse(&xml).unwrap().has_quorum());
        let xml = r#"<pacemaker-result><summary><current_dc present="false"/></summary></pacemaker-result>"#;
        let s = ClusterState::parse(xml).unwrap();
        assert!(!s.has_quorum() && s.online_nodes().is_empty() && s.dc().is_none());
    }
}
