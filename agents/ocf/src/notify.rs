//! What a clone notification says: which operation is about to happen or
//! has happened, and to which nodes (`OCF_RESKEY_CRM_meta_notify_*`).

use crate::{OcfError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    Pre,
    Post,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Start,
    Stop,
    Promote,
    Demote,
}

/// One notification, with node names (unames) per list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub when: When,
    pub operation: Operation,
    pub start: Vec<String>,
    pub stop: Vec<String>,
    pub promote: Vec<String>,
    pub demote: Vec<String>,
    /// Nodes where an instance runs (before the operation, for pre).
    pub active: Vec<String>,
    /// Nodes where a promoted instance runs.
    pub promoted: Vec<String>,
    /// Nodes where an unpromoted instance runs.
    pub unpromoted: Vec<String>,
}

impl Notification {
    pub fn from_env() -> Result<Notification> {
        Self::parse(|name| std::env::var(name).ok())
    }

    /// Pacemaker 2.1 passes both the OCF 1.1 names (`promoted_uname`) and
    /// the 1.x ones (`master_uname`); older versions only the latter.
    pub fn parse(lookup: impl Fn(&str) -> Option<String>) -> Result<Notification> {
        let var = |name: &str| lookup(&format!("OCF_RESKEY_CRM_meta_notify_{name}"));
        let nodes = |names: &[&str]| -> Vec<String> {
            names
                .iter()
                .find_map(|n| var(&format!("{n}_uname")).filter(|v| !v.trim().is_empty()))
                .map(|v| v.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default()
        };
        let when = match var("type").as_deref().map(str::trim) {
            Some("pre") => When::Pre,
            Some("post") => When::Post,
            other => {
                return Err(OcfError::configured(format!(
                    "notify without a valid OCF_RESKEY_CRM_meta_notify_type ({other:?}): \
                     is the clone's notify meta-attribute true?"
                )))
            }
        };
        let operation = match var("operation").as_deref().map(str::trim) {
            Some("start") => Operation::Start,
            Some("stop") => Operation::Stop,
            Some("promote") => Operation::Promote,
            Some("demote") => Operation::Demote,
            other => {
                return Err(OcfError::configured(format!(
                    "notify for an unknown operation {other:?}"
                )))
            }
        };
        Ok(Notification {
            when,
            operation,
            start: nodes(&["start"]),
            stop: nodes(&["stop"]),
            promote: nodes(&["promote"]),
            demote: nodes(&["demote"]),
            active: nodes(&["active"]),
            promoted: nodes(&["promoted", "master"]),
            unpromoted: nodes(&["unpromoted", "slave"]),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<Notification> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (format!("OCF_RESKEY_CRM_meta_notify_{k}"), v.to_string()))
            .collect();
        Notification::parse(|n| pairs.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone()))
    }

    #[test]
    fn reads_a_pre_promote_with_either_spelling_of_the_roles() {
        let n = parse(&[
            ("type", "pre"),
            ("operation", "promote"),
            ("promote_uname", "node2 "),
            ("active_uname", "node2 node3"),
            ("slave_uname", "node2 node3"),
            ("master_uname", " "),
        ])
        .unwrap();
        assert_eq!(n.when, When::Pre);
        assert_eq!(n.operation, Operation::Promote);
        assert_eq!(n.promote, ["node2"]);
        assert_eq!(n.unpromoted, ["node2", "node3"]);
        assert!(n.promoted.is_empty());

        let n = parse(&[
            ("type", "post"),
            ("operation", "demote"),
            ("promoted_uname", "node1"),
            ("master_uname", "node9"),
            ("unpromoted_uname", "node3"),
        ])
        .unwrap();
        assert_eq!(n.when, When::Post);
        assert_eq!(n.operation, Operation::Demote);
        assert_eq!(n.promoted, ["node1"], "the OCF 1.1 name wins");
        assert_eq!(n.unpromoted, ["node3"]);
    }

    #[test]
    fn a_notify_without_its_type_is_a_configuration_error() {
        let e = parse(&[("operation", "start")]).unwrap_err();
        assert_eq!(e.status(), crate::Status::ErrConfigured);
        assert!(
            e.reason().contains("notify meta-attribute"),
            "{}",
            e.reason()
        );
        assert!(parse(&[("type", "pre"), ("operation", "migrate")]).is_err());
    }
}
