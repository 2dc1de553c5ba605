//! Node attributes: promotion scores (`crm_attribute --promotion`), public
//! transient attributes and private ones (`attrd_updater`).
//!
//! Each call forks a Pacemaker tool, so agents call these only when a value
//! changes: [`Published`] remembers what this node last wrote.

use crate::{command, Deadline, OcfError, Result};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, SystemTime};

const CRM_ATTRIBUTE: &str = "/usr/sbin/crm_attribute";
const ATTRD_UPDATER: &str = "/usr/sbin/attrd_updater";
const CRM_NODE: &str = "/usr/sbin/crm_node";
const CIBADMIN: &str = "/usr/sbin/cibadmin";

/// A Pacemaker command-line tool, told the node explicitly. Pacemaker 2.1.5's
/// tools take the node from the agent's environment
/// (`OCF_RESKEY_CRM_meta_on_node`) even over `--all`: `attrd_updater --query
/// --all` then answers for this node alone.
fn tool(program: &str) -> Command {
    let mut cmd = Command::new(program);
    for var in [
        "OCF_RESKEY_CRM_meta_on_node",
        "OCF_RESKEY_CRM_meta_on_node_uuid",
        "OCF_RESKEY_CRM_meta_container_attribute_target",
        "OCF_RESKEY_CRM_meta_physical_host",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// A promotion score: a number, or -INFINITY.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Score {
    MinusInfinity,
    Value(i64),
}

impl std::fmt::Display for Score {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Score::MinusInfinity => f.write_str("-INFINITY"),
            Score::Value(v) => write!(f, "{v}"),
        }
    }
}

impl std::str::FromStr for Score {
    type Err = OcfError;
    /// As attrd and crm_attribute print it: a number, `-INFINITY`.
    fn from_str(s: &str) -> Result<Score> {
        match s.trim() {
            "-INFINITY" => Ok(Score::MinusInfinity),
            v => v
                .parse()
                .map(Score::Value)
                .map_err(|_| OcfError::generic(format!("'{v}' is not a score"))),
        }
    }
}

/// The scores to write so that attrd holds what this node means: every
/// node of `wanted` with its score (`None`: no score), and no score for any
/// other node in `held` (what attrd holds now, by node).
pub fn score_repairs(
    wanted: &BTreeMap<String, Option<Score>>,
    held: &BTreeMap<String, String>,
) -> Vec<(String, Option<Score>)> {
    let mut nodes: Vec<&String> = wanted.keys().chain(held.keys()).collect();
    nodes.sort();
    nodes.dedup();
    nodes
        .into_iter()
        .filter_map(|node| {
            let want = wanted.get(node).copied().flatten();
            let have = held.get(node).and_then(|v| v.parse::<Score>().ok());
            (want != have).then(|| (node.clone(), want))
        })
        .collect()
}

/// The resource a clone instance belongs to: `pg:1` → `pg`.
pub fn resource_of(instance: &str) -> &str {
    instance.split(':').next().unwrap_or(instance)
}

/// Sets (`Some`) or deletes (`None`) the promotion score of `resource` on
/// `node`.
pub fn set_promotion_score(
    resource: &str,
    node: &str,
    score: Option<Score>,
    deadline: &Deadline,
) -> Result<()> {
    let mut cmd = tool(CRM_ATTRIBUTE);
    cmd.arg(format!("--promotion={resource}"))
        .args(["--lifetime=reboot", "--node", node]);
    match score {
        // Pacemaker 2.1.5 reads `-v -INFINITY` as options: the value goes
        // in the same argument.
        Some(score) => cmd.arg(format!("--update={score}")),
        None => cmd.arg("--delete"),
    };
    checked(cmd, deadline).map(drop)
}

/// Sets (`Some`) or clears (`None`) a transient node attribute through
/// pacemaker-attrd. A private one never reaches the CIB, so changing it
/// triggers no new transition.
pub fn set_node_attribute(
    name: &str,
    node: &str,
    value: Option<&str>,
    private: bool,
    deadline: &Deadline,
) -> Result<()> {
    let mut cmd = tool(ATTRD_UPDATER);
    cmd.args(["--name", name, "--node", node]);
    if private {
        cmd.arg("--private");
    }
    match value {
        Some(v) => cmd.arg(format!("--update={v}")),
        None => cmd.arg("--delete"),
    };
    checked(cmd, deadline).map(drop)
}

/// The values of a node attribute on every node that has one (an empty
/// value, what `attrd_updater --delete` leaves, counts as none). An
/// attribute no node ever had is none; attrd not answering is an error.
pub fn node_attribute_everywhere(
    name: &str,
    deadline: &Deadline,
) -> Result<BTreeMap<String, String>> {
    let mut cmd = tool(ATTRD_UPDATER);
    cmd.args(["--name", name, "--query", "--all"]);
    let out = command::run(cmd, deadline)?;
    if !out.status.success() {
        // Pacemaker 2.1.5: exit 78, "Could not query value of NAME:
        // attribute does not exist"; not connected: exit 102.
        if out.stderr.contains("does not exist") {
            return Ok(BTreeMap::new());
        }
        return Err(OcfError::generic(format!(
            "attrd_updater --query {name}: {}",
            out.last_words()
        )));
    }
    Ok(parse_attrd_query(&out.stdout))
}

/// `name="a" host="node1" value="3"` lines.
fn parse_attrd_query(text: &str) -> BTreeMap<String, String> {
    let field = |line: &str, key: &str| -> Option<String> {
        let start = line.find(&format!("{key}=\""))? + key.len() + 2;
        let len = line[start..].find('"')?;
        Some(line[start..start + len].to_string())
    };
    text.lines()
        .filter_map(|l| Some((field(l, "host")?, field(l, "value")?)))
        .filter(|(_, v)| !v.is_empty())
        .collect()
}

/// Sets (`Some`) or deletes (`None`) a permanent node attribute (in the
/// CIB's node section): unlike a transient one it survives the node's loss,
/// fencing and a Pacemaker restart. Changing it is a configuration change.
pub fn set_permanent_node_attribute(
    name: &str,
    node: &str,
    value: Option<&str>,
    deadline: &Deadline,
) -> Result<()> {
    let mut cmd = tool(CRM_ATTRIBUTE);
    cmd.args(["--name", name, "--node", node, "--lifetime=forever"]);
    match value {
        Some(v) => cmd.arg(format!("--update={v}")),
        None => cmd.arg("--delete"),
    };
    checked(cmd, deadline).map(drop)
}

/// A permanent node attribute on every node that has one, offline nodes
/// included (`cibadmin --query --scope nodes`).
pub fn permanent_attribute_everywhere(
    name: &str,
    deadline: &Deadline,
) -> Result<BTreeMap<String, String>> {
    let mut cmd = tool(CIBADMIN);
    cmd.args(["--query", "--scope", "nodes"]);
    let out = checked(cmd, deadline)?;
    parse_node_section(&out.stdout, name)
}

/// `<node uname="..."><instance_attributes><nvpair name= value=/>`.
fn parse_node_section(xml: &str, wanted: &str) -> Result<BTreeMap<String, String>> {
    use quick_xml::events::Event;
    let attr = |e: &quick_xml::events::BytesStart, name: &str| {
        e.try_get_attribute(name)
            .ok()
            .flatten()
            .and_then(|a| a.unescape_value().ok().map(|v| v.into_owned()))
    };
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut found = BTreeMap::new();
    let mut node: Option<String> = None;
    let mut in_attributes = false;
    loop {
        match reader
            .read_event()
            .map_err(|e| OcfError::generic(format!("cibadmin output: {e}")))?
        {
            Event::Start(e) if e.name().as_ref() == b"node" => node = attr(&e, "uname"),
            Event::Start(e) if e.name().as_ref() == b"instance_attributes" => in_attributes = true,
            Event::End(e) if e.name().as_ref() == b"instance_attributes" => in_attributes = false,
            Event::End(e) if e.name().as_ref() == b"node" => node = None,
            Event::Empty(e) if in_attributes && e.name().as_ref() == b"nvpair" => {
                if let (Some(n), Some(v)) = (&node, attr(&e, "value")) {
                    if attr(&e, "name").as_deref() == Some(wanted) {
                        found.insert(n.clone(), v);
                    }
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(found)
}

/// The names of every node the cluster knows (`crm_node -l`), lost ones
/// included: `crm_node --partition` would list only this partition's.
pub fn cluster_node_names(deadline: &Deadline) -> Result<Vec<String>> {
    let mut cmd = tool(CRM_NODE);
    cmd.arg("-l");
    let out = checked(cmd, deadline)?;
    let names = parse_crm_node_list(&out.stdout);
    if names.is_empty() {
        return Err(OcfError::generic("crm_node -l listed no node"));
    }
    Ok(names)
}

/// `ID NAME STATE` lines (`1 node1 member`, `3 node3 lost`).
fn parse_crm_node_list(text: &str) -> Vec<String> {
    let mut names: Vec<String> = text
        .lines()
        .filter_map(|l| {
            let mut fields = l.split_whitespace();
            fields.next()?.parse::<u64>().ok()?;
            fields.next().map(str::to_string)
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

fn checked(cmd: Command, deadline: &Deadline) -> Result<command::Output> {
    let name = cmd.get_program().to_string_lossy().into_owned();
    let args: Vec<String> = cmd
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let out = command::run(cmd, deadline)?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(OcfError::generic(format!(
            "{name} {} failed: {}",
            args.join(" "),
            out.last_words()
        )))
    }
}

/// What this node last published, kept in /run (gone with a reboot, as
/// transient attributes are), so that an unchanged value costs no fork.
///
/// An entry older than `refresh` is written again: the cluster drops a
/// node's transient attributes when the node leaves it, which a node that
/// rejoins without rebooting cannot see.
pub struct Published {
    dir: PathBuf,
    refresh: Duration,
}

impl Published {
    pub fn new(instance: &str) -> Published {
        Self::at(
            PathBuf::from("/run/tusk").join(resource_of(instance)),
            Duration::from_secs(600),
        )
    }

    pub fn at(dir: PathBuf, refresh: Duration) -> Published {
        Published { dir, refresh }
    }

    /// Whether `key` was published with `value` recently.
    pub fn is_current(&self, key: &str, value: &str) -> bool {
        let path = self.dir.join(key);
        let fresh = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .is_some_and(|age| age < self.refresh);
        fresh && std::fs::read_to_string(&path).is_ok_and(|v| v == value)
    }

    /// How long ago `key` was recorded.
    pub fn age(&self, key: &str) -> Option<Duration> {
        let modified = std::fs::metadata(self.dir.join(key))
            .and_then(|m| m.modified())
            .ok()?;
        Some(
            SystemTime::now()
                .duration_since(modified)
                .unwrap_or_default(),
        )
    }

    /// What `key` holds, however old (a note kept on this node).
    pub fn read(&self, key: &str) -> Option<String> {
        std::fs::read_to_string(self.dir.join(key)).ok()
    }

    /// Records that `key` now has `value` in the cluster. A failure to
    /// record only costs a fork next time.
    pub fn record(&self, key: &str, value: &str) {
        let _ = std::fs::create_dir_all(&self.dir);
        let tmp = self.dir.join(format!(".{key}.tmp"));
        if std::fs::write(&tmp, value).is_ok() {
            let _ = std::fs::rename(&tmp, self.dir.join(key));
        }
    }

    pub fn forget(&self, key: &str) {
        let _ = std::fs::remove_file(self.dir.join(key));
    }

    /// The age of the oldest key recorded under `prefix`.
    pub fn oldest(&self, prefix: &str) -> Option<Duration> {
        self.entries(prefix)
            .iter()
            .filter_map(|(key, _)| self.age(&format!("{prefix}{key}")))
            .max()
    }

    /// Keys recorded under `prefix`, with their values.
    pub fn entries(&self, prefix: &str) -> Vec<(String, String)> {
        let Ok(dir) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut found: Vec<(String, String)> = dir
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let key = name.strip_prefix(prefix)?.to_string();
                Some((key, std::fs::read_to_string(e.path()).ok()?))
            })
            .collect();
        found.sort();
        found
    }
}

fn score_entry(score: Option<Score>, basis: &str) -> String {
    match score {
        Some(s) => format!("{s}@{basis}"),
        None => format!("none@{basis}"),
    }
}

/// One resource's view of the cluster's node attributes from this node:
/// the promotion scores it gives, the attributes named `RESOURCE-what` it
/// publishes, and notes it keeps for itself, each written only when its
/// value changes (see [`Published`]).
pub struct NodeAttributes {
    pub resource: String,
    pub node: String,
    published: Published,
}

impl NodeAttributes {
    /// For the resource of `instance` (`pg:1` belongs to `pg`) on `node`.
    pub fn new(instance: &str, node: &str) -> NodeAttributes {
        NodeAttributes {
            resource: resource_of(instance).to_string(),
            node: node.to_string(),
            published: Published::new(instance),
        }
    }

    pub fn at(resource: &str, node: &str, published: Published) -> NodeAttributes {
        NodeAttributes {
            resource: resource.to_string(),
            node: node.to_string(),
            published,
        }
    }

    /// `RESOURCE-what`: attributes of two resources never collide.
    pub fn name(&self, what: &str) -> String {
        format!("{}-{what}", self.resource)
    }

    /// Sets `node`'s promotion score unless this node already set it to
    /// that. `basis` names what the score was computed for (a walsender, a
    /// confirmed event): when it changes the score is written again, since
    /// it may have been deleted meanwhile by the node's own start or stop.
    pub fn set_score(
        &self,
        node: &str,
        score: Option<Score>,
        basis: &str,
        deadline: &Deadline,
    ) -> Result<()> {
        let key = format!("score-{node}");
        let value = score_entry(score, basis);
        if self.published.is_current(&key, &value) {
            return Ok(());
        }
        set_promotion_score(&self.resource, node, score, deadline)?;
        self.published.record(&key, &value);
        Ok(())
    }

    /// The promotion scores attrd holds for this resource, by node.
    pub fn promotion_scores(&self, deadline: &Deadline) -> Result<BTreeMap<String, String>> {
        node_attribute_everywhere(&format!("master-{}", self.resource), deadline)
    }

    /// Makes the promotion scores of the cluster what this node (the one
    /// that scores: a primary) means them to be: `wanted` by node, each
    /// with the basis it was computed for (see [`NodeAttributes::set_score`]),
    /// and no score for any other node. Writes go through the cache, so
    /// steady state forks nothing; but the cache can be wrong (the node
    /// itself or a Pacemaker restart may have deleted a score since), so
    /// once its oldest entry is older than `check_every`, one
    /// `attrd_updater --query` compares it with what attrd holds, repairs
    /// what differs, and the entries count as fresh again. Returns the
    /// failures, each already attempted.
    pub fn give_scores(
        &self,
        wanted: &BTreeMap<String, (Option<Score>, String)>,
        check_every: Duration,
        deadline: &Deadline,
    ) -> Vec<OcfError> {
        let mut failures = Vec::new();
        for (node, (score, basis)) in wanted {
            failures.extend(self.set_score(node, *score, basis, deadline).err());
        }
        // A node scored before and no longer meant: no score, then nothing
        // to remember.
        for node in self.scored_nodes() {
            if !wanted.contains_key(&node) {
                match self.set_score(&node, None, "gone", deadline) {
                    Ok(()) => self.forget_score(&node),
                    Err(e) => failures.push(e),
                }
            }
        }
        let due = self
            .published
            .oldest("score-")
            .is_none_or(|age| age >= check_every);
        if !due || !failures.is_empty() {
            return failures;
        }
        let held = match self.promotion_scores(deadline) {
            Ok(held) => held,
            Err(e) => return vec![e],
        };
        let scores: BTreeMap<String, Option<Score>> =
            wanted.iter().map(|(n, (s, _))| (n.clone(), *s)).collect();
        for (node, score) in score_repairs(&scores, &held) {
            crate::warning!(
                "the promotion score of {node} was not what this node set: {} instead of {}; \
                 setting it again",
                held.get(&node).map(String::as_str).unwrap_or("none"),
                score.map(|s| s.to_string()).unwrap_or("none".into())
            );
            if let Err(e) = set_promotion_score(&self.resource, &node, score, deadline) {
                failures.push(e);
            }
        }
        if failures.is_empty() {
            // What the cache says is true now: fresh again.
            for (node, (score, basis)) in wanted {
                self.published
                    .record(&format!("score-{node}"), &score_entry(*score, basis));
            }
        }
        failures
    }

    /// Deletes every promotion score attrd holds except those of `keep`,
    /// whoever gave them, and says so only once attrd confirmed each
    /// deletion: for a decision that must not be taken while another node
    /// may still be promoted (a primary about to acknowledge commits that
    /// no standby holds).
    pub fn remove_scores_except(&self, keep: &[&str], deadline: &Deadline) -> Result<Vec<String>> {
        let held = self.promotion_scores(deadline)?;
        let mut removed = Vec::new();
        for node in held.keys().filter(|n| !keep.contains(&n.as_str())) {
            set_promotion_score(&self.resource, node, None, deadline)?;
            self.forget_score(node);
            removed.push(node.clone());
        }
        // What the cache remembers giving goes too, even if attrd had
        // already lost it.
        for node in self.scored_nodes() {
            if !keep.contains(&node.as_str()) {
                self.forget_score(&node);
            }
        }
        Ok(removed)
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
        set_promotion_score(&self.resource, &self.node, None, deadline)?;
        self.published.forget(&format!("score-{}", self.node));
        Ok(())
    }

    /// Publishes `RESOURCE-what` for this node (`None` deletes it) unless
    /// it already holds `value`. A private attribute never reaches the CIB.
    pub fn publish(
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
        set_node_attribute(&self.name(what), &self.node, value, private, deadline)?;
        self.published.record(&key, shown);
        Ok(())
    }

    /// Publishes the permanent node attribute `RESOURCE-what` for this
    /// node (see [`set_permanent_node_attribute`]) unless it already holds
    /// `value`.
    pub fn publish_permanent(&self, what: &str, value: &str, deadline: &Deadline) -> Result<()> {
        let key = format!("permanent-{what}");
        if self.published.is_current(&key, value) {
            return Ok(());
        }
        set_permanent_node_attribute(&self.name(what), &self.node, Some(value), deadline)?;
        self.published.record(&key, value);
        Ok(())
    }

    /// The permanent `RESOURCE-what` of every node, offline ones included.
    pub fn permanent_everywhere(
        &self,
        what: &str,
        deadline: &Deadline,
    ) -> Result<BTreeMap<String, String>> {
        permanent_attribute_everywhere(&self.name(what), deadline)
    }

    /// Publishes `RESOURCE-what` whatever was published before: for values
    /// other nodes compare at once, which must never be an old one.
    pub fn publish_fresh(
        &self,
        what: &str,
        value: Option<&str>,
        private: bool,
        deadline: &Deadline,
    ) -> Result<()> {
        self.published.forget(&format!("attr-{what}"));
        self.publish(what, value, private, deadline)
    }

    /// `RESOURCE-what` on every node that has it; none when attrd cannot
    /// be asked (logged: callers compare what they find).
    pub fn everywhere(&self, what: &str, deadline: &Deadline) -> Result<BTreeMap<String, String>> {
        match node_attribute_everywhere(&self.name(what), deadline) {
            Ok(values) => Ok(values),
            Err(e) => {
                crate::warning!("{}", e.reason());
                Ok(BTreeMap::new())
            }
        }
    }

    /// The names of the cluster's nodes, cached on this node: the list
    /// changes when a node is added, which is rare, and asking costs a
    /// fork. The cached list is used while `fits` accepts it (a caller
    /// that meets a node name missing from it asks again), and when it was
    /// asked less than a minute ago, so that a stranger (a tool connecting
    /// under another name) costs at most a fork a minute. When crm_node
    /// fails, an older list is better than none.
    pub fn cluster_nodes(
        &self,
        fits: impl Fn(&[String]) -> bool,
        deadline: &Deadline,
    ) -> Result<Vec<String>> {
        const KEY: &str = "cluster-nodes";
        let cached: Option<Vec<String>> = self
            .published
            .read(KEY)
            .map(|v| v.lines().map(str::to_string).collect())
            .filter(|v: &Vec<String>| !v.is_empty());
        if let Some(nodes) = &cached {
            let recent = self
                .published
                .age(KEY)
                .is_some_and(|age| age < Duration::from_secs(60));
            if recent || fits(nodes) {
                return Ok(nodes.clone());
            }
        }
        match cluster_node_names(deadline) {
            Ok(nodes) => {
                self.published.record(KEY, &nodes.join("\n"));
                Ok(nodes)
            }
            Err(e) => cached.ok_or(e),
        }
    }

    /// A note this node keeps for a later action of its own (for example
    /// the candidates pre-promote saw, for promote): never leaves the node.
    pub fn keep_note(&self, key: &str, value: Option<&str>) {
        match value {
            Some(v) => self.published.record(&format!("note-{key}"), v),
            None => self.published.forget(&format!("note-{key}")),
        }
    }

    pub fn note(&self, key: &str) -> Option<String> {
        self.published.read(&format!("note-{key}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tools_do_not_inherit_the_node_pacemaker_gave_the_agent() {
        let removed: Vec<_> = tool(ATTRD_UPDATER)
            .get_envs()
            .filter(|(_, v)| v.is_none())
            .map(|(k, _)| k.to_string_lossy().into_owned())
            .collect();
        assert!(removed.contains(&"OCF_RESKEY_CRM_meta_on_node".to_string()));
    }

    #[test]
    fn scores_print_as_crm_attribute_reads_them() {
        assert_eq!(Score::MinusInfinity.to_string(), "-INFINITY");
        assert_eq!(Score::Value(1001).to_string(), "1001");
        assert!(Score::MinusInfinity < Score::Value(-1_000_000));
    }

    #[test]
    fn reads_attrd_updater_query_output() {
        let out = "name=\"pg-lsn\" host=\"node1\" value=\"2/0/5000060\"\n\
                   name=\"pg-lsn\" host=\"node2\" value=\"\"\n\
                   name=\"pg-lsn\" host=\"node3\" value=\"1/0/3000000\"\n\
                   garbage\n";
        let m = parse_attrd_query(out);
        assert_eq!(m.len(), 2, "{m:?}");
        assert_eq!(m["node1"], "2/0/5000060");
        assert_eq!(m["node3"], "1/0/3000000");
        assert_eq!(resource_of("pg:2"), "pg");
        assert_eq!(resource_of("pg"), "pg");
    }

    #[test]
    fn scores_attrd_does_not_hold_as_meant_are_repaired_and_strangers_removed() {
        let wanted: BTreeMap<String, Option<Score>> = [
            ("node1", Some(Score::Value(1001))),
            ("node2", Some(Score::Value(1000))),
            ("node3", None),
        ]
        .into_iter()
        .map(|(n, s)| (n.to_string(), s))
        .collect();
        let held: BTreeMap<String, String> = [
            ("node1", "1001"),
            // node2 cleared its own score after the primary set it.
            ("node3", "10"),
            // A score left by a previous primary, or a self-score.
            ("node4", "1000"),
        ]
        .into_iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
        assert_eq!(
            score_repairs(&wanted, &held),
            [
                ("node2".to_string(), Some(Score::Value(1000))),
                ("node3".to_string(), None),
                ("node4".to_string(), None),
            ]
        );
        let exact: BTreeMap<String, String> = [("node1", "1001"), ("node2", "1000")]
            .into_iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        assert!(score_repairs(&wanted, &exact).is_empty());
        assert_eq!("-INFINITY".parse::<Score>().unwrap(), Score::MinusInfinity);
        assert!("x".parse::<Score>().is_err());
    }

    #[test]
    fn the_oldest_entry_says_when_the_cache_needs_checking() {
        let dir = tempfile::tempdir().unwrap();
        let p = Published::at(dir.path().join("pg"), Duration::from_secs(600));
        assert_eq!(p.oldest("score-"), None);
        p.record("score-node1", "1001@primary");
        p.record("attr-timeline", "2");
        assert!(p.oldest("score-").unwrap() < Duration::from_secs(5));
    }

    #[test]
    fn reads_permanent_attributes_from_the_node_section() {
        let xml = r#"<nodes>
  <node id="1" uname="node1">
    <instance_attributes id="nodes-1">
      <nvpair id="nodes-1-pg-primary-sync" name="pg-primary-sync" value="2:sync"/>
      <nvpair id="nodes-1-other" name="other" value="x"/>
    </instance_attributes>
    <utilization id="nodes-1-u"><nvpair id="u1" name="pg-primary-sync" value="no"/></utilization>
  </node>
  <node id="2" uname="node2"/>
  <node id="3" uname="node3">
    <instance_attributes id="nodes-3">
      <nvpair id="nodes-3-pg-primary-sync" name="pg-primary-sync" value="3:async"/>
    </instance_attributes>
  </node>
</nodes>"#;
        let found = parse_node_section(xml, "pg-primary-sync").unwrap();
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(found["node1"], "2:sync");
        assert_eq!(found["node3"], "3:async");
    }

    #[test]
    fn reads_crm_node_list_output() {
        let out = "1 node1 member\n3 node3 lost\n2 node2 member\nnot a node line\n";
        assert_eq!(parse_crm_node_list(out), ["node1", "node2", "node3"]);
        assert!(parse_crm_node_list("").is_empty());
    }

    #[test]
    fn the_cluster_node_list_is_cached_while_it_fits() {
        let dir = tempfile::tempdir().unwrap();
        let published = Published::at(dir.path().join("pg"), Duration::from_secs(600));
        published.record("cluster-nodes", "node1\nnode2");
        let a = NodeAttributes::at("pg", "node1", published);
        let deadline = Deadline::after(Duration::from_secs(5));
        // No cluster here: a list that fits is never asked again, one that
        // does not fit is kept when crm_node cannot answer.
        assert_eq!(
            a.cluster_nodes(|n| n.len() == 2, &deadline).unwrap(),
            ["node1", "node2"]
        );
        assert_eq!(
            a.cluster_nodes(|_| false, &deadline).unwrap(),
            ["node1", "node2"]
        );
    }

    #[test]
    fn node_attributes_are_named_after_the_resource_and_keep_notes_apart() {
        let dir = tempfile::tempdir().unwrap();
        let published = Published::at(dir.path().join("pg"), Duration::from_secs(600));
        let a = NodeAttributes::at("pg", "node1", published);
        assert_eq!(a.name("timeline"), "pg-timeline");
        a.keep_note("candidates", Some("node2 node3"));
        assert_eq!(a.note("candidates").as_deref(), Some("node2 node3"));
        // A note is not a score: it never counts as a scored node.
        assert!(a.scored_nodes().is_empty());
        a.keep_note("candidates", None);
        assert_eq!(a.note("candidates"), None);
        assert_eq!(NodeAttributes::new("pg:2", "n").resource, "pg");
    }

    #[test]
    fn published_values_are_current_until_changed_or_old() {
        let dir = tempfile::tempdir().unwrap();
        let p = Published::at(dir.path().join("pg"), Duration::from_secs(600));
        assert!(!p.is_current("score-node1", "1001"));
        p.record("score-node1", "1001");
        p.record("score-node2", "1000");
        assert!(p.is_current("score-node1", "1001"));
        assert!(!p.is_current("score-node1", "1000"));
        assert_eq!(
            p.entries("score-"),
            [
                ("node1".to_string(), "1001".to_string()),
                ("node2".to_string(), "1000".to_string())
            ]
        );
        p.forget("score-node1");
        assert!(!p.is_current("score-node1", "1001"));

        let stale = Published::at(dir.path().join("pg"), Duration::ZERO);
        assert!(!stale.is_current("score-node2", "1000"));
        assert_eq!(stale.read("score-node2").as_deref(), Some("1000"));
    }
}
