//! What the demo tells while a fault plays out: the cluster reduced to
//! facts (subject, aspect, value), observed again and again, and one line
//! per fact that changed, phrased for someone who has never read the
//! agents' source. Observing is effects; comparing and phrasing are pure.

use std::collections::BTreeMap;

/// A node's power: `on` or `off` (the lab's record).
pub const POWER: &str = "power";
/// A node's boot: its init's PID, which changes when it boots again.
pub const BOOT: &str = "boot";
/// A node's cable: `in` or `out` of the switch.
pub const CABLE: &str = "cable";
/// A node as the cluster sees it: `online`, `lost` (offline, unclean: not
/// yet fenced), `offline`.
pub const MEMBERSHIP: &str = "membership";
/// How often the lab's power switch fenced a node, and how the last time:
/// `0`, or `COUNT ACTION` (`2 reboot`, `1 off`), from the fence daemon's
/// log (see [`fencings`]): the switch's own record, which a poll of
/// crm_mon can miss between "lost" and "offline".
pub const FENCED: &str = "fenced";
/// The cluster's DC (subject [`CLUSTER`]): a node name or `none`.
pub const DC: &str = "dc";
/// PostgreSQL on a node for Pacemaker: `primary`, `standby`, `stopped`,
/// with ` (failed)` when crm_mon says so.
pub const POSTGRESQL: &str = "postgresql";
/// Where the floating address runs (subject [`CLUSTER`]): a node or `nowhere`.
pub const ADDRESS: &str = "address";
/// The node attribute `pg-timeline`.
pub const TIMELINE: &str = "timeline";
/// A standby in the primary's `pg_stat_replication`: `STATE, SYNC_STATE`,
/// `not streaming`, or [`IS_PRIMARY`] for the primary itself.
pub const REPLICATION: &str = "replication";
pub const IS_PRIMARY: &str = "is the primary";
/// The node attribute `pg-sync` on the primary: `sync` or `async`.
pub const SYNC: &str = "pg-sync";
/// A cut-off node's own view of the cluster.
pub const OWN_VIEW: &str = "own view";
/// Aspects starting with this are failed operations (`failed monitor`).
pub const FAILED: &str = "failed ";
/// The subject of cluster-wide facts.
pub const CLUSTER: &str = "cluster";
/// pgpool on a node, as Pacemaker runs it (crm_mon): `running`,
/// `stopped`, `starting`, `stopping`, with ` (failed)` when crm_mon says so.
pub const PGPOOL: &str = "pgpool";
/// Whether a node's pgpool answers a client's `SHOW pool_nodes`: `yes`;
/// `closed` (it closed the client's session), `waits` (a new connection
/// has been waiting for pgpool to take it), `no: ERROR` (anything else).
pub const PGPOOL_ANSWERS: &str = "pgpool answers";
/// A node's pgpool's view of its backends, when it answers: each backend
/// (by node name, in pgpool's node id order) with what pgpool does with it,
/// as [`pool_view`] writes it: `node1 primary, node2 standby, node3 down`.
pub const PGPOOL_VIEW: &str = "pgpool's view";
/// The node attribute `pgpool-backends`: the pgpool agent's summary of
/// pgpool's view at its last monitor, as `crm_mon -A` shows it. Shown in
/// the summary, not narrated (pgpool's own view is, as it changes).
pub const PGPOOL_BACKENDS: &str = "pgpool-backends";
/// [`PGPOOL_ANSWERS`] and [`PGPOOL_VIEW`] of a pgpool that does not run:
/// what it shows once started again is told whole, not as a change from
/// what it showed before it stopped.
pub const NOT_RUNNING: &str = "not running";

/// slon on a node for Pacemaker (the Slony layout): `origin` (the
/// Promoted instance), `subscriber`, `stopped`, with ` (failed)` when
/// crm_mon says so.
pub const SLON: &str = "slon";
/// The set's origin as a node's own Slony catalog has it (`sl_set`): a
/// node name, or [`NO_SCHEMA`].
pub const SET_ORIGIN: &str = "set origin";
/// A node without the Slony schema: dropped from the Slony cluster (after
/// a FAILOVER, or by the agent rejoining it), or not stored again yet.
pub const NO_SCHEMA: &str = "no Slony schema";
/// A node's own subscription to the set (`sl_subscribe`): `active`,
/// `inactive` (subscribed, the copy not started or not done), `none`, or
/// `origin` (the origin subscribes to nothing).
pub const SUBSCRIPTION: &str = "subscription";

/// What was observed at one moment. A fact that an observation could not
/// establish (no primary to ask, a node that does not answer) is absent,
/// which means "unknown", not "gone": see [`Facts::merge`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts(BTreeMap<(String, String), String>);

impl Facts {
    pub fn set(&mut self, subject: &str, aspect: &str, value: impl Into<String>) {
        self.0
            .insert((subject.to_string(), aspect.to_string()), value.into());
    }

    pub fn get(&self, subject: &str, aspect: &str) -> Option<&str> {
        self.0
            .get(&(subject.to_string(), aspect.to_string()))
            .map(String::as_str)
    }

    /// The subjects that have `aspect` = `value`.
    pub fn with(&self, aspect: &str, value: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|((_, a), v)| a == aspect && v.as_str() == value)
            .map(|((s, _), _)| s.as_str())
            .collect()
    }

    /// What is known after `observed`: its facts, and for what it could not
    /// establish, the last known value.
    pub fn merge(&self, observed: &Facts) -> Facts {
        let mut merged = self.clone();
        merged
            .0
            .extend(observed.0.iter().map(|(k, v)| (k.clone(), v.clone())));
        merged
    }

    /// One line for each fact of `next` that differs from this one, in the
    /// order a reader follows a failover (power and membership first, the
    /// replication last, then pgpool). pgpool's facts that changed alike on
    /// several nodes (every pgpool detaching the same backend) are one line.
    pub fn changes(&self, next: &Facts) -> Vec<String> {
        let mut changed: Vec<(usize, &str, String)> = Vec::new();
        // (aspect, old, new) -> the nodes whose pgpool changed so.
        let mut pgpool: BTreeMap<(&str, Option<&str>, &str), Vec<&str>> = BTreeMap::new();
        for ((subject, aspect), new) in &next.0 {
            let old = self.0.get(&(subject.clone(), aspect.clone()));
            if old == Some(new) {
                continue;
            }
            let old = old.map(String::as_str);
            if is_pgpool(aspect) {
                pgpool
                    .entry((aspect.as_str(), old, new.as_str()))
                    .or_default()
                    .push(subject.as_str());
            } else if let Some(line) = describe(subject, aspect, old, new) {
                changed.push((order(aspect), subject.as_str(), line));
            }
        }
        for ((aspect, old, new), subjects) in pgpool {
            if let Some(line) = describe_pgpool(&subjects, aspect, old, new) {
                changed.push((order(aspect), subjects[0], line));
            }
        }
        changed.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        changed.into_iter().map(|(_, _, line)| line).collect()
    }
}

fn is_pgpool(aspect: &str) -> bool {
    [PGPOOL, PGPOOL_ANSWERS, PGPOOL_VIEW, PGPOOL_BACKENDS].contains(&aspect)
}

fn order(aspect: &str) -> usize {
    const ORDER: [&str; 18] = [
        POWER,
        FENCED,
        BOOT,
        CABLE,
        MEMBERSHIP,
        OWN_VIEW,
        DC,
        POSTGRESQL,
        SLON,
        ADDRESS,
        SET_ORIGIN,
        SUBSCRIPTION,
        TIMELINE,
        REPLICATION,
        SYNC,
        PGPOOL,
        PGPOOL_ANSWERS,
        PGPOOL_VIEW,
    ];
    ORDER
        .iter()
        .position(|a| *a == aspect)
        .unwrap_or(ORDER.len())
}

/// The line for one change, or None when it is not worth one (a first
/// value nobody needs told, the primary's own replication entry). Aspects
/// not known here (a later agent's) get a plain `subject: aspect old -> new`.
pub fn describe(subject: &str, aspect: &str, old: Option<&str>, new: &str) -> Option<String> {
    let s = subject;
    Some(match (aspect, old, new) {
        (POWER, _, "off") => format!("{s} is powered off"),
        // A boot says it better.
        (POWER, _, _) => return None,
        (BOOT, Some(_), _) => format!("{s} boots again: its cluster stack starts"),
        (CABLE, _, "out") => {
            format!("{s}'s cable is out: it is cut off from the other nodes and from clients")
        }
        (CABLE, Some(_), "in") => format!("{s}'s cable is back in"),
        (MEMBERSHIP, _, "lost") => format!(
            "{s} is lost (offline, unclean): the others fence it before they touch its resources"
        ),
        // Fenced: the switch's record says so (FENCED).
        (MEMBERSHIP, Some("lost"), "offline") => return None,
        (MEMBERSHIP, _, "offline") => format!("{s} is offline"),
        (MEMBERSHIP, Some(_), "online") => format!("{s} is online again: it rejoined the cluster"),
        (FENCED, None, _) | (FENCED, _, "0") => return None,
        (FENCED, Some(_), fenced) => format!(
            "{s} is fenced: the fence device {}, so its resources may now run elsewhere",
            match fenced.split_once(' ').map(|(_, action)| action) {
                Some("off") => "switched it off",
                Some("reboot") => "power-cycled it",
                _ => "confirmed it down",
            }
        ),
        (DC, _, "none") => "no DC: the nodes elect one".to_string(),
        (DC, _, node) => format!("{node} is the DC (the node that decides for the cluster)"),
        (POSTGRESQL, _, "primary") => {
            format!("PostgreSQL on {s} is promoted: {s} is the primary")
        }
        (POSTGRESQL, Some("primary"), "standby") => {
            format!("PostgreSQL on {s} is demoted: a standby now")
        }
        (POSTGRESQL, _, "standby") => format!("PostgreSQL on {s} runs as a standby"),
        (POSTGRESQL, Some("primary"), "stopped") => {
            format!("PostgreSQL on {s} is stopped (it was the primary)")
        }
        (POSTGRESQL, _, "stopped") => format!("PostgreSQL on {s} is stopped"),
        (POSTGRESQL, _, "Promoting") => format!("PostgreSQL on {s} is being promoted"),
        (POSTGRESQL, _, "Demoting") => format!("PostgreSQL on {s} is being demoted"),
        (POSTGRESQL, _, "Starting") => format!("PostgreSQL on {s} is starting"),
        (POSTGRESQL, _, "Stopping") => format!("PostgreSQL on {s} is stopping"),
        (POSTGRESQL, _, "running") => format!("PostgreSQL on {s} runs"),
        (POSTGRESQL, _, other) => format!("PostgreSQL on {s}: {other}"),
        (SLON, _, "origin") => {
            format!("slon on {s} is promoted: {s} is the set's origin for Pacemaker")
        }
        (SLON, Some("origin"), "subscriber") => {
            format!("slon on {s} is demoted: a subscriber for Pacemaker")
        }
        (SLON, _, "subscriber") => format!("slon on {s} runs, as a subscriber"),
        (SLON, Some("origin"), "stopped") => format!("slon on {s} is stopped (it was the origin)"),
        (SLON, _, "stopped") => format!("slon on {s} is stopped"),
        (SLON, _, "Promoting") => {
            format!("slon on {s} is being promoted (the set moves to it, or FAILOVER)")
        }
        (SLON, _, "Demoting") => format!("slon on {s} is being demoted"),
        (SLON, _, "Starting") => format!("slon on {s} is starting"),
        (SLON, _, "Stopping") => format!("slon on {s} is stopping"),
        (SLON, _, other) => format!("slon on {s}: {other}"),
        (SET_ORIGIN, None, _) => return None,
        (SET_ORIGIN, _, NO_SCHEMA) => {
            format!("{s}'s database has no Slony schema any more: {s} is out of the Slony cluster")
        }
        (SET_ORIGIN, _, origin) if origin == s => {
            format!("{s}'s catalog: {s} is the set's origin (it takes writes)")
        }
        (SET_ORIGIN, _, origin) => format!("{s}'s catalog: {origin} is the set's origin"),
        (SUBSCRIPTION, None, _) | (SUBSCRIPTION, _, "origin") => return None,
        (SUBSCRIPTION, _, "active") => {
            format!("{s} is subscribed to the set: it replicates from the origin")
        }
        (SUBSCRIPTION, _, "inactive") => {
            format!("{s} is subscribed to the set, its copy not done yet")
        }
        (SUBSCRIPTION, _, "none") => format!("{s} is not subscribed to the set"),
        (ADDRESS, _, "nowhere") => "the floating address is down: no node holds it".to_string(),
        (ADDRESS, _, node) => format!("the floating address is up on {node}"),
        (TIMELINE, Some(old), new) => format!("{s} is on timeline {new} (was {old})"),
        (TIMELINE, None, new) => format!("{s} is on timeline {new}"),
        (REPLICATION, _, IS_PRIMARY) => return None,
        (REPLICATION, Some(IS_PRIMARY) | None, "not streaming") => return None,
        (REPLICATION, _, "not streaming") => format!("{s} no longer streams from the primary"),
        (REPLICATION, _, state) => match state.split_once(", ") {
            Some(("streaming", sync)) => format!("{s} streams from the primary ({sync})"),
            _ => format!("{s} replicates: {state}"),
        },
        (SYNC, _, "sync") => {
            format!("commits on {s} wait for a synchronous standby (pg-sync=sync)")
        }
        (SYNC, _, "async") => {
            format!("commits on {s} no longer wait for a standby: none streams (pg-sync=async)")
        }
        (OWN_VIEW, _, view) => format!("{s} (cut off) sees itself: {view}"),
        (a, old, new) if is_pgpool(a) => return describe_pgpool(&[s], a, old, new),
        // OCF 190/191: degraded, which crm_mon lists among failed actions
        // though Pacemaker counts no failure and restarts nothing.
        (failed, _, how) if failed.starts_with(FAILED) && how.starts_with("exit 19") => format!(
            "{s}: the {} says degraded ({how}): not a failure, nothing is restarted",
            &failed[FAILED.len()..]
        ),
        (failed, _, how) if failed.starts_with(FAILED) => {
            format!("{s}: the {} failed ({how})", &failed[FAILED.len()..])
        }
        (_, None, _) => format!("{s}: {aspect} {new}"),
        (_, Some(old), _) => format!("{s}: {aspect} {old} -> {new}"),
    })
}

/// The value of [`PGPOOL_VIEW`]: each backend's name and what pgpool does
/// with it (`primary`, `standby`, `down`; an attached backend whose server
/// says otherwise gets it added: `standby (server: primary)`).
pub fn pool_view(backends: &[(String, String)]) -> String {
    backends
        .iter()
        .map(|(name, state)| format!("{name} {state}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// [`pool_view`] read back: (name, state) for each backend.
pub fn parse_pool_view(value: &str) -> Vec<(&str, &str)> {
    value
        .split(", ")
        .filter_map(|entry| entry.split_once(' '))
        .collect()
}

/// "pgpool on node2", "the pgpools on node2 and node3", and whether that
/// is more than one.
fn pgpools(subjects: &[&str]) -> (String, bool) {
    match subjects {
        [one] => (format!("pgpool on {one}"), false),
        [init @ .., last] => (
            format!("the pgpools on {} and {last}", init.join(", ")),
            true,
        ),
        [] => ("pgpool".to_string(), false),
    }
}

/// The line for a change of pgpool on `subjects` (the nodes whose pgpool
/// changed alike), or None when it is not worth one: what Pacemaker does
/// with pgpool, whether it answers, and what it now does with each backend
/// that changed in its view.
fn describe_pgpool(
    subjects: &[&str],
    aspect: &str,
    old: Option<&str>,
    new: &str,
) -> Option<String> {
    let (who, many) = pgpools(subjects);
    // Singular or plural: the verb, then "its"/"their".
    let verb = |one: &str, more: &str| {
        if many {
            more.to_string()
        } else {
            one.to_string()
        }
    };
    let its = verb("its", "their");
    Some(match (aspect, old, new) {
        (PGPOOL, None, _) | (PGPOOL_BACKENDS, _, _) => return None,
        (PGPOOL, _, "running") => format!("{who} {} started (Pacemaker)", verb("is", "are")),
        (PGPOOL, _, "stopped") => format!("{who} {} stopped", verb("is", "are")),
        (PGPOOL, _, other) => format!("{who} {} {other}", verb("is", "are")),
        (PGPOOL_ANSWERS | PGPOOL_VIEW, _, NOT_RUNNING) => return None,
        (PGPOOL_ANSWERS, None | Some("yes" | NOT_RUNNING), "yes") => return None,
        (PGPOOL_ANSWERS, _, "yes") => {
            format!("{who} {} clients again", verb("answers", "answer"))
        }
        (PGPOOL_ANSWERS, _, "closed") => format!("{who} closed {its} client sessions"),
        (PGPOOL_ANSWERS, _, "waits") => {
            format!("{who} {} new clients waiting", verb("keeps", "keep"))
        }
        (PGPOOL_ANSWERS, _, no) => match no.strip_prefix("no: ") {
            Some(error) => format!(
                "{who} {} a client with an error ({error})",
                verb("answers", "answer")
            ),
            None => format!("{who} {} not answer a client", verb("does", "do")),
        },
        (PGPOOL_VIEW, None | Some(NOT_RUNNING), view) => {
            format!("{who} {}: {view}", verb("sees", "see"))
        }
        (PGPOOL_VIEW, Some(old), new) => {
            let before = parse_pool_view(old);
            let changed: Vec<String> = parse_pool_view(new)
                .into_iter()
                .filter_map(|(backend, state)| {
                    let was = before.iter().find(|(b, _)| *b == backend).map(|(_, s)| *s);
                    (was != Some(state)).then(|| backend_change(backend, was, state, &its))
                })
                .collect();
            if changed.is_empty() {
                return None;
            }
            format!("{who}: {}", changed.join(", "))
        }
        (_, _, _) => format!("{who}: {aspect} {new}"),
    })
}

/// What pgpool now does with `backend`, in words (`its`: "its" or
/// "their", the pgpools' primary).
fn backend_change(backend: &str, was: Option<&str>, state: &str, its: &str) -> String {
    match (was, state) {
        (Some(w), "down") if w != "down" => format!("{backend} detached (no client is sent there)"),
        (_, "down") => format!("{backend} down"),
        (Some("down"), "standby") => format!("{backend} attached again, as a standby"),
        (_, "primary") => format!("{backend} now {its} primary (writes go there)"),
        (Some(w), "standby") if w.starts_with("primary") => {
            format!("{backend} now a standby")
        }
        (_, other) => match other.split_once(" (server: ") {
            Some((role, server)) => format!(
                "{backend} still a {role} to pgpool, though its server is a {}",
                server.trim_end_matches(')')
            ),
            None => format!("{backend} {other}"),
        },
    }
}

/// Whether pgpool on `node` agrees with Pacemaker about `primary`: it
/// answers, sends writes to `primary` (the only backend it calls primary)
/// and has every other PostgreSQL node attached as a standby.
pub fn pgpool_agrees(
    facts: &Facts,
    node: &str,
    primary: &str,
    pg_nodes: &[String],
) -> Result<(), String> {
    if facts.get(node, PGPOOL) != Some("running") {
        return Err(format!("pgpool does not run on {node}"));
    }
    if facts.get(node, PGPOOL_ANSWERS) != Some("yes") {
        return Err(format!("pgpool on {node} does not answer"));
    }
    let value = facts.get(node, PGPOOL_VIEW).unwrap_or("");
    let view = parse_pool_view(value);
    let state = |backend: &str| view.iter().find(|(b, _)| *b == backend).map(|(_, s)| *s);
    if state(primary) != Some("primary")
        || view.iter().filter(|(_, s)| *s == "primary").count() != 1
    {
        return Err(format!(
            "pgpool on {node} does not send writes to {primary} alone yet ({value})"
        ));
    }
    for standby in pg_nodes.iter().filter(|n| n.as_str() != primary) {
        if state(standby) != Some("standby") {
            return Err(format!(
                "pgpool on {node} does not have {standby} attached as a standby yet ({value})"
            ));
        }
    }
    Ok(())
}

/// What a settled cluster looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expect<'a> {
    /// The primary before; with `must_move`, another node must be primary.
    pub old: &'a str,
    pub must_move: bool,
    /// The node that must be primary, if any.
    pub target: Option<&'a str>,
    /// The primary's commits wait for a synchronous standby (pg-sync=sync):
    /// what `sync=available` and `strict` settle to while standbys stream.
    pub sync: bool,
    /// The nodes whose pgpool must agree with Pacemaker (see
    /// [`pgpool_agrees`]); none without pgpool.
    pub pgpool: &'a [String],
}

/// The steady state every fault ends with: exactly one primary (as
/// `expect` says), the floating address on it, every other PostgreSQL node
/// online, a standby streaming from it, on its timeline; pg-sync=sync when
/// expected; and every pgpool of `expect` agreeing (the primary its
/// primary, every standby attached). Returns the primary, or what is still
/// missing.
pub fn settled(facts: &Facts, pg_nodes: &[String], expect: Expect) -> Result<String, String> {
    let Expect {
        old,
        must_move,
        target,
        sync,
        pgpool,
    } = expect;
    let primaries = facts.with(POSTGRESQL, "primary");
    let [primary] = primaries.as_slice() else {
        return Err(format!("{} primaries: {primaries:?}", primaries.len()));
    };
    if must_move && *primary == old {
        return Err(format!("{old} is still the primary"));
    }
    if target.is_some_and(|t| t != *primary) {
        return Err(format!(
            "{primary} is the primary, not {}",
            target.unwrap_or("")
        ));
    }
    if facts.get(CLUSTER, ADDRESS) != Some(*primary) {
        return Err(format!("the floating address is not on {primary}"));
    }
    for node in pg_nodes.iter().filter(|n| n.as_str() != *primary) {
        if facts.get(node, MEMBERSHIP) != Some("online") {
            return Err(format!("{node} is not online"));
        }
        if facts.get(node, POSTGRESQL) != Some("standby") {
            return Err(format!("{node} is not a standby"));
        }
        if !facts
            .get(node, REPLICATION)
            .is_some_and(|r| r.starts_with("streaming"))
        {
            return Err(format!("{node} does not stream from {primary}"));
        }
        if facts.get(node, TIMELINE) != facts.get(primary, TIMELINE) {
            return Err(format!("{node} has not published {primary}'s timeline yet"));
        }
    }
    if sync && facts.get(primary, SYNC) != Some("sync") {
        return Err(format!(
            "{primary}'s commits do not wait for a synchronous standby yet (pg-sync)"
        ));
    }
    for node in pgpool {
        pgpool_agrees(facts, node, primary, pg_nodes)?;
    }
    Ok(primary.to_string())
}

/// Successful fencings by node, from the lab's fence daemon log: how
/// many (`off` and `reboot`) and the last action. Its lines read
/// `HH:MM:SS tusk-lab: fence: reboot node2 from=node1: ok (0.8 s)`.
pub fn fencings(log: &str) -> BTreeMap<String, (usize, String)> {
    let mut found: BTreeMap<String, (usize, String)> = BTreeMap::new();
    for line in log.lines() {
        let Some((_, request)) = line.split_once("tusk-lab: fence: ") else {
            continue;
        };
        let mut words = request.split_whitespace();
        let (Some(action), Some(node)) = (words.next(), words.next()) else {
            continue;
        };
        if !matches!(action, "off" | "reboot") || !request.contains(": ok") {
            continue;
        }
        let entry = found.entry(node.to_string()).or_default();
        entry.0 += 1;
        entry.1 = action.to_string();
    }
    found
}

/// A short form of a client's error for one line of narration.
pub fn short_error(message: &str) -> String {
    let message = message.strip_prefix("db error: ").unwrap_or(message).trim();
    if message.chars().count() <= 90 {
        return message.to_string();
    }
    let cut: String = message.chars().take(87).collect();
    format!("{cut}...")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy() -> Facts {
        let mut f = Facts::default();
        for (node, role, repl) in [
            ("node1", "primary", IS_PRIMARY),
            ("node2", "standby", "streaming, sync"),
            ("node3", "standby", "streaming, potential"),
        ] {
            f.set(node, POWER, "on");
            f.set(node, MEMBERSHIP, "online");
            f.set(node, POSTGRESQL, role);
            f.set(node, REPLICATION, repl);
            f.set(node, TIMELINE, "1");
        }
        f.set(CLUSTER, ADDRESS, "node1");
        f.set("node1", SYNC, "sync");
        f
    }

    fn nodes() -> Vec<String> {
        vec!["node1".into(), "node2".into(), "node3".into()]
    }

    #[test]
    fn a_failover_is_told_in_the_order_it_is_followed() {
        let before = healthy();
        // node1 lost and fenced, node2 promoted, in one observation.
        let mut seen = Facts::default();
        seen.set("node1", POWER, "off");
        seen.set("node1", MEMBERSHIP, "lost");
        seen.set("node2", POSTGRESQL, "primary");
        seen.set("node2", REPLICATION, IS_PRIMARY);
        seen.set("node2", TIMELINE, "2");
        seen.set(CLUSTER, ADDRESS, "node2");
        let after = before.merge(&seen);
        assert_eq!(
            before.changes(&after),
            vec![
                "node1 is powered off",
                "node1 is lost (offline, unclean): the others fence it before they touch its resources",
                "PostgreSQL on node2 is promoted: node2 is the primary",
                "the floating address is up on node2",
                "node2 is on timeline 2 (was 1)",
            ]
        );
        // What was not observed (node1's role, node3's replication) is kept.
        assert_eq!(after.get("node1", POSTGRESQL), Some("primary"));
        assert_eq!(
            after.get("node3", REPLICATION),
            Some("streaming, potential")
        );
        assert!(after.changes(&after).is_empty());
    }

    #[test]
    fn the_old_primary_coming_back_as_a_standby_is_told() {
        let mut before = healthy();
        before.set("node1", MEMBERSHIP, "lost");
        before.set("node1", BOOT, "100");
        let mut seen = Facts::default();
        before.set("node1", FENCED, "0");
        seen.set("node1", MEMBERSHIP, "offline");
        seen.set("node1", FENCED, "1 reboot");
        seen.set("node1", POSTGRESQL, "stopped");
        let fenced = before.merge(&seen);
        assert_eq!(
            before.changes(&fenced),
            vec![
                "node1 is fenced: the fence device power-cycled it, so its resources may now run \
                 elsewhere",
                "PostgreSQL on node1 is stopped (it was the primary)",
            ]
        );
        let mut seen = Facts::default();
        seen.set("node1", BOOT, "200");
        seen.set("node1", POWER, "on");
        seen.set("node1", MEMBERSHIP, "online");
        seen.set("node1", POSTGRESQL, "standby");
        seen.set("node1", REPLICATION, "streaming, async");
        let back = fenced.merge(&seen);
        assert_eq!(
            fenced.changes(&back),
            vec![
                "node1 boots again: its cluster stack starts",
                "node1 is online again: it rejoined the cluster",
                "PostgreSQL on node1 runs as a standby",
                "node1 streams from the primary (async)",
            ]
        );
    }

    #[test]
    fn unknown_aspects_and_failures_get_a_plain_line() {
        let before = healthy();
        let mut seen = Facts::default();
        seen.set("node1", "failed monitor", "exit 7: not running");
        seen.set("node2", "failed slon monitor", "exit 190");
        seen.set("node2", "pgpool sees node1", "down");
        seen.set("node3", REPLICATION, "not streaming");
        assert_eq!(
            before.changes(&before.merge(&seen)),
            vec![
                "node3 no longer streams from the primary",
                "node1: the monitor failed (exit 7: not running)",
                "node2: the slon monitor says degraded (exit 190): not a failure, nothing is \
                 restarted",
                "node2: pgpool sees node1 down",
            ]
        );
    }

    #[test]
    fn settled_means_one_primary_with_every_other_node_streaming() {
        let f = healthy();
        let stay = Expect {
            old: "node1",
            must_move: false,
            target: None,
            sync: true,
            pgpool: &[],
        };
        let moves = Expect {
            must_move: true,
            ..stay
        };
        assert_eq!(settled(&f, &nodes(), stay), Ok("node1".into()));
        assert_eq!(
            settled(&f, &nodes(), moves),
            Err("node1 is still the primary".into())
        );
        let mut two = f.clone();
        two.set("node2", POSTGRESQL, "primary");
        assert!(settled(&two, &nodes(), stay).is_err());
        let mut moved = f.clone();
        moved.set("node1", POSTGRESQL, "standby");
        moved.set("node1", REPLICATION, "streaming, async");
        moved.set("node2", POSTGRESQL, "primary");
        moved.set("node2", TIMELINE, "2");
        moved.set(CLUSTER, ADDRESS, "node2");
        let to_node2 = Expect {
            target: Some("node2"),
            sync: false,
            ..moves
        };
        assert_eq!(
            settled(&moved, &nodes(), to_node2),
            Err("node1 has not published node2's timeline yet".into())
        );
        moved.set("node1", TIMELINE, "2");
        moved.set("node3", TIMELINE, "2");
        assert_eq!(settled(&moved, &nodes(), to_node2), Ok("node2".into()));
        assert_eq!(
            settled(
                &moved,
                &nodes(),
                Expect {
                    sync: true,
                    ..to_node2
                }
            ),
            Err("node2's commits do not wait for a synchronous standby yet (pg-sync)".into())
        );
        moved.set("node1", REPLICATION, "not streaming");
        assert_eq!(
            settled(&moved, &nodes(), moves),
            Err("node1 does not stream from node2".into())
        );
    }

    fn with_pgpool(mut f: Facts, view: &str) -> Facts {
        for node in nodes() {
            f.set(&node, PGPOOL, "running");
            f.set(&node, PGPOOL_ANSWERS, "yes");
            f.set(&node, PGPOOL_VIEW, view);
            f.set(&node, PGPOOL_BACKENDS, "3/3 attached, primary node1 (id 0)");
        }
        f
    }

    #[test]
    fn pgpool_following_a_failover_is_one_line_per_step_for_every_pgpool_alike() {
        let before = with_pgpool(healthy(), "node1 primary, node2 standby, node3 standby");
        let mut seen = Facts::default();
        seen.set("node1", POWER, "off");
        seen.set("node2", PGPOOL_ANSWERS, "waits");
        seen.set("node3", PGPOOL_ANSWERS, "waits");
        let lost = before.merge(&seen);
        assert_eq!(
            before.changes(&lost),
            vec![
                "node1 is powered off",
                "the pgpools on node2 and node3 keep new clients waiting",
            ]
        );
        let mut seen = Facts::default();
        seen.set("node1", PGPOOL, "stopped");
        seen.set("node1", PGPOOL_ANSWERS, NOT_RUNNING);
        seen.set("node1", PGPOOL_VIEW, NOT_RUNNING);
        for node in ["node2", "node3"] {
            seen.set(node, PGPOOL_ANSWERS, "yes");
            seen.set(
                node,
                PGPOOL_VIEW,
                "node1 down, node2 primary, node3 standby",
            );
            seen.set(node, PGPOOL_BACKENDS, "2/3 attached, primary node2 (id 1)");
        }
        let followed = lost.merge(&seen);
        assert_eq!(
            lost.changes(&followed),
            vec![
                "pgpool on node1 is stopped",
                "the pgpools on node2 and node3 answer clients again",
                "the pgpools on node2 and node3: node1 detached (no client is sent there), \
                 node2 now their primary (writes go there)",
            ]
        );
        // The old primary back: its pgpool starts with its own view, then
        // every pgpool attaches it; one pgpool a little later than another.
        let mut seen = Facts::default();
        seen.set("node1", PGPOOL, "running");
        seen.set("node1", PGPOOL_ANSWERS, "yes");
        seen.set(
            "node1",
            PGPOOL_VIEW,
            "node1 down, node2 primary, node3 standby",
        );
        seen.set(
            "node2",
            PGPOOL_VIEW,
            "node1 standby, node2 primary, node3 standby",
        );
        let back = followed.merge(&seen);
        assert_eq!(
            followed.changes(&back),
            vec![
                "pgpool on node1 is started (Pacemaker)",
                "pgpool on node1 sees: node1 down, node2 primary, node3 standby",
                "pgpool on node2: node1 attached again, as a standby",
            ]
        );
        assert_eq!(
            describe_pgpool(
                &["node2"],
                PGPOOL_VIEW,
                Some("node1 down, node2 standby, node3 standby"),
                "node1 down, node2 standby (server: primary), node3 standby"
            )
            .unwrap(),
            "pgpool on node2: node2 still a standby to pgpool, though its server is a primary"
        );
        assert_eq!(
            describe_pgpool(
                &["node1", "node2", "node3"],
                PGPOOL_VIEW,
                Some("node1 primary, node2 standby, node3 standby"),
                "node1 standby, node2 primary, node3 standby"
            )
            .unwrap(),
            "the pgpools on node1, node2 and node3: node1 now a standby, node2 now their primary \
             (writes go there)"
        );
    }

    #[test]
    fn settled_with_pgpool_means_every_pgpool_agrees_with_pacemaker() {
        let all = nodes();
        let expect = Expect {
            old: "node1",
            must_move: false,
            target: None,
            sync: true,
            pgpool: &all,
        };
        let f = with_pgpool(healthy(), "node1 primary, node2 standby, node3 standby");
        assert_eq!(settled(&f, &nodes(), expect), Ok("node1".into()));
        let mut g = f.clone();
        g.set(
            "node3",
            PGPOOL_VIEW,
            "node1 primary, node2 down, node3 standby",
        );
        assert_eq!(
            settled(&g, &nodes(), expect),
            Err(
                "pgpool on node3 does not have node2 attached as a standby yet \
                 (node1 primary, node2 down, node3 standby)"
                    .into()
            )
        );
        let mut g = f.clone();
        g.set(
            "node2",
            PGPOOL_VIEW,
            "node1 primary, node2 primary, node3 standby",
        );
        assert!(settled(&g, &nodes(), expect)
            .unwrap_err()
            .contains("does not send writes to node1 alone"));
        assert_eq!(
            describe_pgpool(
                &["node1", "node3"],
                PGPOOL_ANSWERS,
                Some("yes"),
                "no: FATAL: unable to read data from DB node 1"
            )
            .unwrap(),
            "the pgpools on node1 and node3 answer a client with an error \
             (FATAL: unable to read data from DB node 1)"
        );
        let mut g = f.clone();
        g.set("node2", PGPOOL_ANSWERS, "no: FATAL: x");
        assert_eq!(
            settled(&g, &nodes(), expect),
            Err("pgpool on node2 does not answer".into())
        );
        let mut g = f.clone();
        g.set("node1", PGPOOL, "stopped");
        assert_eq!(
            settled(&g, &nodes(), expect),
            Err("pgpool does not run on node1".into())
        );
        // Without pgpool in the layout, its facts are not asked about.
        assert!(settled(
            &g,
            &nodes(),
            Expect {
                pgpool: &[],
                ..expect
            }
        )
        .is_ok());
    }

    #[test]
    fn fencings_are_read_from_the_power_switch_s_log() {
        let log = "00:46:55 tusk-lab: fence daemon listening on /tmp/x/fence.sock\n\
                   00:49:43 tusk-lab: power on node2: booting its cluster stack\n\
                   00:49:43 tusk-lab: fence: reboot node2 from=node1: ok (0.8 s)\n\
                   01:03:24 tusk-lab: fence: off node2 from=node3: ok (0.1 s)\n\
                   01:03:30 tusk-lab: fence: on node2: ok (0.1 s)\n\
                   01:04:00 tusk-lab: fence: off node3 from=node1: error no such node (0.0 s)\n";
        let found = fencings(log);
        assert_eq!(found.get("node2"), Some(&(2, "off".to_string())));
        assert_eq!(found.get("node3"), None);
    }

    #[test]
    fn errors_are_shortened_to_one_line() {
        assert_eq!(
            short_error("db error: FATAL: the database system is shutting down"),
            "FATAL: the database system is shutting down"
        );
        let long = "x".repeat(200);
        assert_eq!(short_error(&long).chars().count(), 90);
    }
}
