//! corosync.conf and the CIB every node starts with.
//!
//! Written by the lab, not by `pcs cluster setup`: that needs pcsd and node
//! authentication, while everything after it (`pcs resource`, `pcs stonith`,
//! `pcs property`...) works against the running CIB without pcsd.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

pub const CLUSTER_NAME: &str = "tusk-lab";

/// Corosync's token timeout in ms. 1000 is corosync 3's own default, written
/// out so that nobody has to look it up; with 3 nodes the effective token is
/// 1000 + 650 (token_coefficient per node beyond two) = 1650 ms, and a lost
/// node is noticed about 2 s after it stopped answering (token plus the
/// consensus timeout of 1.2 x token).
pub const TOKEN_MS: u32 = 1000;

/// corosync 3.1's parser takes one key per line: `a: 1 b: 2` on one line, or
/// a key on the same line as `{`, is silently misread.
pub fn corosync_conf(nodes: &[(String, Ipv4Addr)]) -> String {
    let mut nodelist = String::new();
    for (i, (name, addr)) in nodes.iter().enumerate() {
        let _ = write!(
            nodelist,
            "    node {{\n        nodeid: {id}\n        name: {name}\n        ring0_addr: {addr}\n    }}\n",
            id = i + 1
        );
    }
    format!(
        "# Written by tusk-lab; a node of a lab cluster on one machine.
totem {{
    version: 2
    cluster_name: {CLUSTER_NAME}
    transport: knet
    token: {TOKEN_MS}
    ip_version: ipv4
    # The lab's network is a bridge inside namespaces of this machine.
    crypto_cipher: none
    crypto_hash: none
}}
nodelist {{
{nodelist}}}
quorum {{
    provider: corosync_votequorum
}}
logging {{
    to_stderr: no
    to_logfile: yes
    logfile: /var/log/corosync/corosync.log
    # No syslog: there is none in a node, and the host's must not receive
    # the lab's messages.
    to_syslog: no
    timestamp: hires
}}
"
    )
}

/// The CIB a node starts with, the first time only (a restarted node keeps
/// the CIB it had).
///
/// dc-deadtime: before electing a DC, a starting controller waits this long
/// for an existing one to show up; the default 20 s made a 3-node `up` take
/// about 25 s. It must be in the CIB Pacemaker starts with, because the
/// controller reads it before that first wait.
///
/// stonith-enabled=true is Pacemaker's default; written out because the lab
/// exists to behave like production, where it must never be off.
///
/// No cib.xml.sig: pacemaker-based accepts a CIB without one (logging a
/// warning) and writes the signature itself.
pub const SEED_CIB: &str = r#"<cib crm_feature_set="3.16.1" validate-with="pacemaker-3.9" epoch="1" num_updates="0" admin_epoch="0">
  <configuration>
    <crm_config>
      <cluster_property_set id="cib-bootstrap-options">
        <nvpair id="cib-bootstrap-options-dc-deadtime" name="dc-deadtime" value="2s"/>
        <nvpair id="cib-bootstrap-options-stonith-enabled" name="stonith-enabled" value="true"/>
        <nvpair id="cib-bootstrap-options-cluster-name" name="cluster-name" value="tusk-lab"/>
      </cluster_property_set>
    </crm_config>
    <nodes/>
    <resources/>
    <constraints/>
  </configuration>
  <status/>
</cib>
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn three() -> Vec<(String, Ipv4Addr)> {
        (1..=3)
            .map(|i| (format!("node{i}"), Ipv4Addr::new(10, 213, 77, 10 + i)))
            .collect()
    }

    #[test]
    fn every_key_is_alone_on_its_line() {
        for line in corosync_conf(&three()).lines() {
            let line = line.trim();
            if line.starts_with('#') || line.is_empty() {
                continue;
            }
            let keys = line.matches(": ").count() + line.matches('{').count();
            assert!(keys <= 1, "more than one key on {line:?}");
        }
    }

    #[test]
    fn the_nodelist_names_every_node_with_its_address() {
        let conf = corosync_conf(&three());
        assert!(
            conf.contains("nodeid: 3\n        name: node3\n        ring0_addr: 10.213.77.13\n"),
            "{conf}"
        );
        assert_eq!(conf.matches("node {").count(), 3);
        assert_eq!(conf.matches('{').count(), conf.matches('}').count());
    }
}
