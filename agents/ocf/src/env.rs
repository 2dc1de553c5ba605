//! What Pacemaker tells an agent about the call itself (not its parameters).

use crate::{Deadline, OcfError, Result, Role};
use std::ffi::OsString;
use std::time::Duration;

/// The `OCF_RESOURCE_INSTANCE` and `OCF_RESKEY_CRM_meta_*` values of one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OcfEnv {
    /// `pg`, or `pg:1` for a clone instance; `-` when run by hand.
    pub instance: String,
    /// The operation's timeout, as Pacemaker will enforce it.
    pub timeout: Option<Duration>,
    /// The monitor interval; zero for a probe and for non-recurring actions.
    pub interval: Duration,
    /// The role a recurring monitor was configured for.
    pub role: Option<Role>,
    /// The node Pacemaker runs this operation on.
    pub node: Option<String>,
    /// An instance of a promotable clone.
    pub promotable: bool,
    /// The node Pacemaker is about to promote, when this call belongs to a
    /// transition that promotes one (notify=true clones get it with every
    /// action of the transition: a demote learns where the role goes).
    pub promote_target: Option<String>,
    /// The clone's `notify` meta-attribute, when Pacemaker passes it.
    pub notify: Option<bool>,
    /// The clone's `promoted-max` (`master-max`), when Pacemaker passes it.
    pub promoted_max: Option<u32>,
}

impl OcfEnv {
    /// Pacemaker's values; one that is not UTF-8 is an error rather than
    /// silently unset.
    pub fn from_env() -> Result<OcfEnv> {
        for name in [
            "OCF_RESOURCE_INSTANCE",
            "OCF_RESKEY_CRM_meta_timeout",
            "OCF_RESKEY_CRM_meta_interval",
            "OCF_RESKEY_CRM_meta_role",
            "OCF_RESKEY_CRM_meta_on_node",
            "OCF_RESKEY_CRM_meta_promoted_max",
            "OCF_RESKEY_CRM_meta_master_max",
            "OCF_RESKEY_CRM_meta_notify_promote_uname",
            "OCF_RESKEY_CRM_meta_notify",
        ] {
            var(name)?;
        }
        Ok(Self::parse(|name| var(name).ok().flatten()))
    }

    pub fn parse(lookup: impl Fn(&str) -> Option<String>) -> OcfEnv {
        let millis = |name: &str| {
            lookup(name)
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_millis)
        };
        OcfEnv {
            instance: lookup("OCF_RESOURCE_INSTANCE")
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| "-".to_string()),
            timeout: millis("OCF_RESKEY_CRM_meta_timeout").filter(|d| !d.is_zero()),
            interval: millis("OCF_RESKEY_CRM_meta_interval").unwrap_or(Duration::ZERO),
            role: lookup("OCF_RESKEY_CRM_meta_role").and_then(|r| Role::parse(&r)),
            node: lookup("OCF_RESKEY_CRM_meta_on_node").filter(|v| !v.is_empty()),
            // Pacemaker 2.1 passes the promotable clone's promoted-max (and
            // its 1.x name master-max) to every action, not `promotable`.
            promotable: [
                "OCF_RESKEY_CRM_meta_promoted_max",
                "OCF_RESKEY_CRM_meta_master_max",
            ]
            .iter()
            .any(|name| {
                lookup(name)
                    .and_then(|v| v.trim().parse::<u32>().ok())
                    .is_some_and(|n| n > 0)
            }),
            promote_target: lookup("OCF_RESKEY_CRM_meta_notify_promote_uname")
                .and_then(|v| v.split_whitespace().next().map(str::to_string)),
            notify: lookup("OCF_RESKEY_CRM_meta_notify")
                .and_then(|v| crate::params::parse_bool(&v)),
            promoted_max: [
                "OCF_RESKEY_CRM_meta_promoted_max",
                "OCF_RESKEY_CRM_meta_master_max",
            ]
            .iter()
            .find_map(|name| lookup(name).and_then(|v| v.trim().parse::<u32>().ok())),
        }
    }

    /// The name of this node: Pacemaker's, else the kernel's.
    pub fn node_name(&self) -> String {
        self.node.clone().unwrap_or_else(|| {
            nix::sys::utsname::uname()
                .map(|u| u.nodename().to_string_lossy().into_owned())
                .unwrap_or_else(|_| "localhost".to_string())
        })
    }

    /// An agent whose promotion logic assumes one promoted instance that
    /// every instance hears about (pre-promote notifications) refuses any
    /// other clone set-up. Pacemaker passes the clone's meta-attributes to
    /// every action; `pcs resource create`'s own validation passes none,
    /// and then there is nothing to check.
    pub fn check_one_promoted_with_notify(&self) -> Result<()> {
        if let Some(max) = self.promoted_max.filter(|m| *m != 1) {
            return Err(OcfError::configured(format!(
                "promoted-max is {max}: this agent promotes exactly one instance \
                 (pcs resource meta RESOURCE-clone promoted-max=1)"
            )));
        }
        if self.promotable && self.notify == Some(false) {
            return Err(OcfError::configured(
                "the promotable clone has notify=false: promotion compares the candidates \
                 at pre-promote (pcs resource meta RESOURCE-clone notify=true)",
            ));
        }
        Ok(())
    }

    /// A monitor with interval 0: Pacemaker asking what already runs here.
    pub fn is_probe(&self) -> bool {
        self.interval.is_zero()
    }

    /// The deadline for this call: Pacemaker's timeout, or when run by hand
    /// the timeout the meta-data recommends for the action.
    pub fn deadline(&self, recommended: Duration) -> Deadline {
        Deadline::for_timeout(self.timeout.unwrap_or(recommended))
    }
}

/// The environment variable `name`: `None` when unset, an error (naming the
/// variable, not echoing the value) when it is not UTF-8.
pub fn var(name: &str) -> Result<Option<String>> {
    match std::env::var_os(name) {
        None => Ok(None),
        Some(raw) => decode(name, raw),
    }
}

pub fn decode(name: &str, raw: OsString) -> Result<Option<String>> {
    raw.into_string().map(Some).map_err(|raw| {
        OcfError::configured(format!("{name} is not valid UTF-8 ({} bytes)", raw.len()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn reads_pacemaker_meta_values() {
        let e = OcfEnv::parse(env(&[
            ("OCF_RESOURCE_INSTANCE", "pg:1"),
            ("OCF_RESKEY_CRM_meta_timeout", "20000"),
            ("OCF_RESKEY_CRM_meta_interval", "10000"),
            ("OCF_RESKEY_CRM_meta_role", "Master"),
            ("OCF_RESKEY_CRM_meta_promoted_max", "1"),
            ("OCF_RESKEY_CRM_meta_on_node", "node2"),
            ("OCF_RESKEY_CRM_meta_notify_promote_uname", "node3 "),
        ]));
        assert_eq!(e.promote_target.as_deref(), Some("node3"));
        assert!(e.promotable);
        assert_eq!(e.node_name(), "node2");
        assert_eq!(e.instance, "pg:1");
        assert_eq!(e.timeout, Some(Duration::from_secs(20)));
        assert_eq!(e.interval, Duration::from_secs(10));
        assert_eq!(e.role, Some(Role::Promoted));
        assert!(!e.is_probe());
    }

    #[test]
    fn a_promotable_clone_needs_one_promoted_instance_and_notifications() {
        let good = OcfEnv::parse(env(&[
            ("OCF_RESKEY_CRM_meta_promoted_max", "1"),
            ("OCF_RESKEY_CRM_meta_notify", "true"),
        ]));
        assert_eq!(good.check_one_promoted_with_notify(), Ok(()));
        // pcs's validation: no meta-attributes at all.
        assert_eq!(
            OcfEnv::parse(env(&[])).check_one_promoted_with_notify(),
            Ok(())
        );
        let two = OcfEnv::parse(env(&[("OCF_RESKEY_CRM_meta_master_max", "2")]));
        let e = two.check_one_promoted_with_notify().unwrap_err();
        assert_eq!(e.status(), crate::Status::ErrConfigured);
        assert!(e.reason().contains("promoted-max is 2"), "{}", e.reason());
        let silent = OcfEnv::parse(env(&[
            ("OCF_RESKEY_CRM_meta_promoted_max", "1"),
            ("OCF_RESKEY_CRM_meta_notify", "false"),
        ]));
        let e = silent.check_one_promoted_with_notify().unwrap_err();
        assert!(e.reason().contains("notify=true"), "{}", e.reason());
    }

    #[test]
    fn an_empty_environment_is_a_hand_run_probe() {
        let e = OcfEnv::parse(env(&[]));
        assert_eq!(e.instance, "-");
        assert_eq!(e.timeout, None);
        assert!(e.is_probe());
        assert!(!e.promotable);
        assert_eq!(e.promote_target, None);
        let old = OcfEnv::parse(env(&[("OCF_RESKEY_CRM_meta_master_max", "1")]));
        assert!(old.promotable, "Pacemaker 1.x spelling");
        let zero = OcfEnv::parse(env(&[("OCF_RESKEY_CRM_meta_promoted_max", "0")]));
        assert!(!zero.promotable);
    }
}
