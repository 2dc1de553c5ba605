//! The cluster as this node's Pacemaker shows it (`crm_mon --one-shot
//! --output-as=xml`): quorum, which nodes are online, where each instance
//! of a resource runs and in which role, and the public node attributes.
//!
//! One fork of a tool that reads the whole CIB: for decisions taken rarely
//! (a promotion, a cluster with no primary), never in a steady-state
//! monitor.

use crate::{command, Deadline, OcfError, Result};
use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;
use std::collections::BTreeMap;
use std::process::Command;

const CRM_MON: &str = "/usr/sbin/crm_mon";

/// A node as the cluster knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NodeState {
    pub online: bool,
    /// Lost and not fenced yet: whatever ran there may still run.
    pub unclean: bool,
}

/// One active instance of a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub node: String,
    /// `Started`, `Promoted`, `Unpromoted`, ...
    pub role: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterView {
    /// This node's partition has quorum (and a DC).
    pub quorate: bool,
    pub nodes: BTreeMap<String, NodeState>,
    /// Active instances, by resource id (a clone's primitive id: `pg`).
    pub instances: BTreeMap<String, Vec<Instance>>,
    /// Public node attributes, by node then name (promotion scores are
    /// `master-RESOURCE`).
    pub attributes: BTreeMap<String, BTreeMap<String, String>>,
}

/// What a failed crm_mon said, from its XML: the last `<error>` line, or
/// the status message (its last line would be `</pacemaker-result>`).
fn failure_of(xml: &str) -> Option<String> {
    let inner = |open: &str, close: &str| {
        let start = xml.rfind(open)? + open.len();
        let end = start + xml[start..].find(close)?;
        Some(xml[start..end].trim().to_string())
    };
    inner("<error>", "</error>")
        .or_else(|| inner("message=\"", "\""))
        .filter(|s| !s.is_empty())
}

impl ClusterView {
    /// Asks this node's Pacemaker.
    pub fn query(deadline: &Deadline) -> Result<ClusterView> {
        let mut cmd = Command::new(CRM_MON);
        cmd.args(["--one-shot", "--output-as=xml"]);
        // As for the attribute tools: no node from the agent's environment.
        for var in [
            "OCF_RESKEY_CRM_meta_on_node",
            "OCF_RESKEY_CRM_meta_on_node_uuid",
        ] {
            cmd.env_remove(var);
        }
        let out = command::run(cmd, deadline)?;
        if !out.status.success() {
            let why = failure_of(&out.stdout).unwrap_or_else(|| out.last_words().to_string());
            return Err(OcfError::generic(format!("crm_mon: {why}")));
        }
        ClusterView::parse(&out.stdout)
    }

    pub fn parse(xml: &str) -> Result<ClusterView> {
        let mut view = ClusterView::default();
        let mut reader = Reader::from_str(xml);
        // Where we are: inside <nodes>, <resources> (and which resource),
        // <node_attributes> (and which node).
        let mut section = "";
        let mut resource: Option<(String, String, bool)> = None;
        let mut attr_node: Option<String> = None;
        let mut seen_result = false;
        loop {
            let event = reader
                .read_event()
                .map_err(|e| OcfError::generic(format!("crm_mon output: {e}")))?;
            let (start, empty) = match &event {
                Event::Start(e) => (Some(e), false),
                Event::Empty(e) => (Some(e), true),
                _ => (None, false),
            };
            if let Some(e) = start {
                let name = e.name();
                match (name.as_ref(), section) {
                    (b"pacemaker-result", _) => seen_result = true,
                    (b"current_dc", _) => {
                        view.quorate = attr(e, "present").as_deref() == Some("true")
                            && attr(e, "with_quorum").as_deref() == Some("true");
                    }
                    (b"nodes", "") if !empty => section = "nodes",
                    (b"resources", "") if !empty => section = "resources",
                    (b"node_attributes", "") if !empty => section = "node_attributes",
                    (b"node", "nodes") => {
                        if let Some(n) = attr(e, "name") {
                            view.nodes.insert(
                                n,
                                NodeState {
                                    online: attr(e, "online").as_deref() == Some("true"),
                                    unclean: attr(e, "unclean").as_deref() == Some("true"),
                                },
                            );
                        }
                    }
                    (b"resource", "resources") => {
                        let r = (
                            attr(e, "id").unwrap_or_default(),
                            attr(e, "role").unwrap_or_default(),
                            attr(e, "active").as_deref() == Some("true"),
                        );
                        if !empty {
                            resource = Some(r);
                        }
                    }
                    (b"node", "resources") => {
                        if let (Some((id, role, true)), Some(node)) = (&resource, attr(e, "name")) {
                            view.instances
                                .entry(id.clone())
                                .or_default()
                                .push(Instance {
                                    node,
                                    role: role.clone(),
                                });
                        }
                    }
                    (b"node", "node_attributes") if !empty => attr_node = attr(e, "name"),
                    (b"attribute", "node_attributes") => {
                        if let (Some(node), Some(n), Some(v)) =
                            (&attr_node, attr(e, "name"), attr(e, "value"))
                        {
                            view.attributes
                                .entry(node.clone())
                                .or_default()
                                .insert(n, v);
                        }
                    }
                    _ => {}
                }
            }
            match event {
                Event::End(e) => match e.name().as_ref() {
                    b"nodes" | b"resources" | b"node_attributes" => section = "",
                    b"resource" => resource = None,
                    b"node" if section == "node_attributes" => attr_node = None,
                    _ => {}
                },
                Event::Eof => break,
                _ => {}
            }
        }
        if !seen_result {
            return Err(OcfError::generic("crm_mon gave no cluster state"));
        }
        Ok(view)
    }

    pub fn is_online(&self, node: &str) -> bool {
        self.nodes.get(node).is_some_and(|n| n.online && !n.unclean)
    }

    /// The nodes where `resource` runs in `role`.
    pub fn nodes_in_role(&self, resource: &str, role: &str) -> Vec<&str> {
        self.instances
            .get(resource)
            .into_iter()
            .flatten()
            .filter(|i| i.role == role)
            .map(|i| i.node.as_str())
            .collect()
    }

    /// Whether an instance of `resource` is active on `node`, in any role.
    pub fn runs_on(&self, resource: &str, node: &str) -> bool {
        self.instances
            .get(resource)
            .is_some_and(|list| list.iter().any(|i| i.node == node))
    }

    /// A public node attribute.
    pub fn attribute(&self, node: &str, name: &str) -> Option<&str> {
        self.attributes.get(node)?.get(name).map(String::as_str)
    }
}

fn attr(e: &BytesStart, name: &str) -> Option<String> {
    e.try_get_attribute(name)
        .ok()
        .flatten()
        .and_then(|a| a.unescape_value().ok().map(|v| v.into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Abridged from Pacemaker 2.1.5: node1 lost and not fenced yet, its
    /// primary still shown there.
    const LOST_PRIMARY: &str = r#"<pacemaker-result api-version="2.25" request="crm_mon --one-shot --output-as=xml">
  <summary>
    <current_dc present="true" version="2.1.5" name="node2" id="2" with_quorum="true" mixed_version="false"/>
  </summary>
  <nodes>
    <node name="node1" id="1" online="false" standby="false" pending="false" unclean="true" type="member"/>
    <node name="node2" id="2" online="true" standby="false" pending="false" unclean="false" type="member"/>
    <node name="node3" id="3" online="true" standby="false" pending="false" unclean="false" type="member"/>
  </nodes>
  <resources>
    <clone id="pg-clone" multi_state="true" unique="false">
      <resource id="pg" resource_agent="ocf:tusk:postgresql" role="Promoted" active="true" orphaned="false" nodes_running_on="1">
        <node name="node1" id="1" cached="true"/>
      </resource>
      <resource id="pg" resource_agent="ocf:tusk:postgresql" role="Unpromoted" active="true" nodes_running_on="1">
        <node name="node2" id="2" cached="true"/>
      </resource>
      <resource id="pg" resource_agent="ocf:tusk:postgresql" role="Stopped" active="false" nodes_running_on="0"/>
    </clone>
    <resource id="pg-vip" resource_agent="ocf:heartbeat:IPaddr2" role="Started" active="true" nodes_running_on="1">
      <node name="node1" id="1" cached="true"/>
    </resource>
  </resources>
  <node_attributes>
    <node name="node2">
      <attribute name="master-pg" value="1000"/>
      <attribute name="pg-timeline" value="3"/>
    </node>
    <node name="node3">
      <attribute name="pg-timeline" value="3"/>
    </node>
  </node_attributes>
  <status code="0" message="OK"/>
</pacemaker-result>"#;

    #[test]
    fn reads_quorum_nodes_roles_and_attributes() {
        let v = ClusterView::parse(LOST_PRIMARY).unwrap();
        assert!(v.quorate);
        assert!(!v.is_online("node1"), "lost, unclean");
        assert!(v.nodes["node1"].unclean);
        assert!(v.is_online("node2") && v.is_online("node3"));
        assert!(!v.is_online("node9"));
        assert_eq!(v.nodes_in_role("pg", "Promoted"), ["node1"]);
        assert_eq!(v.nodes_in_role("pg", "Unpromoted"), ["node2"]);
        assert!(v.runs_on("pg", "node2") && !v.runs_on("pg", "node3"));
        assert_eq!(v.nodes_in_role("pg-vip", "Started"), ["node1"]);
        assert_eq!(v.attribute("node2", "master-pg"), Some("1000"));
        assert_eq!(v.attribute("node3", "master-pg"), None);
        assert_eq!(v.attribute("node3", "pg-timeline"), Some("3"));
    }

    #[test]
    fn a_failed_crm_mon_is_told_by_its_last_error() {
        let out = r#"<pacemaker-result api-version="2.25" request="crm_mon --one-shot --output-as=xml">
  <status code="102" message="Not connected">
    <errors>
      <error>error: Could not connect to launcher: Connection refused</error>
      <error>crm_mon: Connection to cluster failed: Connection refused</error>
    </errors>
  </status>
</pacemaker-result>
"#;
        assert_eq!(
            failure_of(out).as_deref(),
            Some("crm_mon: Connection to cluster failed: Connection refused")
        );
        let quiet =
            r#"<pacemaker-result><status code="102" message="Not connected"/></pacemaker-result>"#;
        assert_eq!(failure_of(quiet).as_deref(), Some("Not connected"));
        assert_eq!(failure_of("</pacemaker-result>"), None);
    }

    #[test]
    fn no_quorum_no_dc_and_errors() {
        let v = ClusterView::parse(
            &LOST_PRIMARY.replace(r#"with_quorum="true""#, r#"with_quorum="false""#),
        )
        .unwrap();
        assert!(!v.quorate);
        let v =
            ClusterView::parse(&LOST_PRIMARY.replace(r#"present="true""#, r#"present="false""#))
                .unwrap();
        assert!(!v.quorate);
        assert!(
            ClusterView::parse("crm_mon: Error: cluster is not available on this node").is_err()
        );
    }
}
