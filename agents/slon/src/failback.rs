//! Failback without a runbook: a failed-over old origin that comes back
//! is saved, dropped, stored again and subscribed, so that a planned move
//! can make it the origin again.
//!
//! After FAILOVER (and DROP NODE) the old origin is abandoned: Slony can
//! only take it back rebuilt from scratch, and SUBSCRIBE SET empties its
//! copies of the set's tables first. Rows it committed as origin and never
//! replicated (before the failure, or after it came back: its catalog still
//! names it the origin and it accepts writes) would vanish: they are saved
//! first, with pg_dump, into a file named with the time.

use crate::config::SlonConfig;
use crate::database::NodeDb;
use crate::promotable::FailedOver;
use crate::quote::slonik_literal;
use crate::slonik;
use ocf::attributes::NodeAttributes;
use ocf::{command, info, warning, Deadline, OcfError, OsUser, Result};
use pgclient::quote;
use std::path::PathBuf;
use std::time::SystemTime;

/// Debian's pg_dump (its wrapper picks the newest installed version).
const PG_DUMP: &str = "/usr/bin/pg_dump";

/// Before slon starts: saves the rows, drops this node from the cluster if
/// it is still listed, drops the leftover schema and stores the node and
/// its paths again from the origin. Returns the origin to subscribe from.
/// `schema_left` is false for a node whose own slon already dropped its
/// schema (it processed its DROP NODE): its tables still hold its rows,
/// listed then by the new origin's catalog.
#[allow(clippy::too_many_arguments)]
pub fn rejoin(
    cfg: &SlonConfig,
    user: &OsUser,
    db: &NodeDb,
    attrs: &NodeAttributes,
    local: u32,
    failed: &FailedOver,
    schema_left: bool,
    deadline: &Deadline,
) -> Result<u32> {
    let origin = failed.origin.ok_or_else(|| {
        OcfError::generic(format!(
            "node {local} was failed over ({}), but no node names the new origin",
            failed.why
        ))
    })?;
    warning!(
        "node {local} was failed over ({}){}: rejoining it as a subscriber of node {origin}",
        failed.why,
        if schema_left {
            String::new()
        } else {
            format!(
                " and has no schema {} (its slon dropped it)",
                cfg.instance.cluster.schema()
            )
        }
    );
    let origin_db;
    let catalog = if schema_left {
        db
    } else {
        let conninfo = cfg
            .origin
            .admin_conninfo
            .iter()
            .find(|(id, _)| *id == origin)
            .map(|(_, c)| c.as_str())
            .ok_or_else(|| {
                OcfError::configured(format!(
                    "admin_conninfo gives no conninfo for node {origin}"
                ))
            })?;
        origin_db = NodeDb::from_conninfo(conninfo, &user.name, Some((user.uid, user.gid)))?;
        &origin_db
    };
    let saved = save_rows(cfg, user, catalog, local, deadline)?;
    info!(
        "saved the rows of sets {:?} that node {local} held to {}",
        cfg.origin.sets,
        saved.display()
    );
    if failed.listed {
        slonik::run(
            cfg,
            user,
            &format!("drop node (id = {local}, event node = {origin});\n"),
            deadline,
        )?;
    }
    // From here on the node is no member until it is stored again: a start
    // that fails now (a timeout, slonik not reaching the origin) must not
    // leave it schemaless for good. The next start resumes.
    attrs.keep_note(PENDING, Some(&format!("{local} {origin}")));
    if schema_left {
        let schema = cfg.instance.cluster.schema_sql();
        db.query(deadline, &format!("DROP SCHEMA {schema} CASCADE"))
            .map_err(|e| e.context(format!("dropping node {local}'s leftover schema")))?;
        info!(
            "dropped node {local}'s leftover schema {}",
            cfg.instance.cluster.schema()
        );
    }
    slonik::run(cfg, user, &store(cfg, local, origin)?, deadline)?;
    Ok(origin)
}

/// The note of a rejoin in progress: `LOCAL ORIGIN`, kept in /run (a
/// reboot forgets it, as it forgets the instance).
const PENDING: &str = "rejoin";

/// A rejoin an earlier start began and did not finish: (this node, the
/// origin to subscribe from).
pub fn pending(attrs: &NodeAttributes) -> Option<(u32, u32)> {
    parse_pending(&attrs.note(PENDING)?)
}

fn parse_pending(note: &str) -> Option<(u32, u32)> {
    let (local, origin) = note.trim().split_once(' ')?;
    Some((local.parse().ok()?, origin.parse().ok()?))
}

pub fn forget_pending(attrs: &NodeAttributes) {
    attrs.keep_note(PENDING, None);
}

/// Goes on with a rejoin an earlier start left after dropping the schema:
/// stores the node again unless it was (its schema is back), so that slon
/// can start and the subscription follow.
pub fn resume(
    cfg: &SlonConfig,
    user: &OsUser,
    db: &NodeDb,
    local: u32,
    origin: u32,
    deadline: &Deadline,
) -> Result<()> {
    let schema = cfg.instance.cluster.schema();
    let rows = db
        .query(
            deadline,
            &format!(
                "SELECT 1 FROM pg_namespace WHERE nspname = {}",
                quote::literal(&schema)?
            ),
        )
        .map_err(|e| e.context("looking for the cluster's schema"))?;
    let stored = rows.first().is_some_and(|r| !r.is_empty());
    warning!(
        "resuming the rejoin of node {local} as a subscriber of node {origin} that an earlier \
         start left {}",
        if stored {
            "before subscribing it"
        } else {
            "with its schema dropped"
        }
    );
    if !stored {
        slonik::run(cfg, user, &store(cfg, local, origin)?, deadline)?;
    }
    Ok(())
}

/// After slon serves the node again: the subscriptions (SUBSCRIBE SET
/// returns at once; slon copies the tables).
pub fn subscribe(
    cfg: &SlonConfig,
    user: &OsUser,
    local: u32,
    origin: u32,
    deadline: &Deadline,
) -> Result<()> {
    let script: String = cfg
        .origin
        .sets
        .iter()
        .map(|set| {
            format!("subscribe set (id = {set}, provider = {origin}, receiver = {local}, forward = yes);\n")
        })
        .collect();
    slonik::run(cfg, user, &script, deadline)?;
    info!(
        "node {local} subscribed to sets {:?} from node {origin}; slon copies them now",
        cfg.origin.sets
    );
    Ok(())
}

/// STORE NODE, and STORE PATH both ways between this node and every other,
/// each path with the server's admin conninfo.
pub fn store(cfg: &SlonConfig, local: u32, origin: u32) -> Result<String> {
    let admin = &cfg.origin.admin_conninfo;
    let conninfo_of = |id: u32| {
        admin
            .iter()
            .find(|(n, _)| *n == id)
            .map(|(_, c)| c.as_str())
            .ok_or_else(|| {
                OcfError::configured(format!("admin_conninfo gives no conninfo for node {id}"))
            })
    };
    let mut s = format!(
        "store node (id = {local}, comment = {}, event node = {origin});\n",
        slonik_literal(&format!("node {local}, rejoined by tusk"))?
    );
    for (other, _) in admin.iter().filter(|(n, _)| *n != local) {
        for (server, client) in [(local, *other), (*other, local)] {
            s.push_str(&format!(
                "store path (server = {server}, client = {client}, conninfo = {});\n",
                slonik_literal(conninfo_of(server)?)?
            ));
        }
    }
    Ok(s)
}

/// pg_dump --data-only of this node's copies of the sets' tables, as
/// `catalog` lists them (this node's own, or the origin's when this node's
/// schema is gone), into failback_dir (the user's home directory by
/// default).
fn save_rows(
    cfg: &SlonConfig,
    user: &OsUser,
    catalog: &NodeDb,
    local: u32,
    deadline: &Deadline,
) -> Result<PathBuf> {
    let schema = cfg.instance.cluster.schema_sql();
    let sets = cfg
        .origin
        .sets
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let results = catalog
        .query(
            deadline,
            &format!(
                "SELECT tab_nspname, tab_relname FROM {schema}.sl_table \
                 WHERE tab_set IN ({sets}) ORDER BY tab_id"
            ),
        )
        .map_err(|e| e.context("listing the sets' tables"))?;
    let tables = crate::origin::pairs_text(results.first().map(Vec::as_slice).unwrap_or_default());
    let epoch = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let dir = cfg.origin.failback_dir.as_ref().unwrap_or(&user.home);
    let path = dir.join(format!(
        "tusk-failback-{}-node{local}-{epoch}.sql",
        cfg.instance.cluster
    ));
    let mut cmd = user.command(PG_DUMP);
    cmd.arg("--data-only")
        .arg(format!("--file={}", path.display()))
        .arg(format!("--dbname={}", cfg.instance.conninfo));
    for (namespace, name) in &tables {
        cmd.arg(format!(
            "--table={}.{}",
            quote::identifier(namespace)?,
            quote::identifier(name)?
        ));
    }
    if tables.is_empty() {
        warning!("sets {:?} hold no table: nothing to save", cfg.origin.sets);
        return Ok(path);
    }
    let out = command::run(cmd, deadline)?;
    if !out.status.success() {
        return Err(OcfError::generic(format!(
            "saving the rows before rejoining failed ({}): {}; node {local} is left as it is",
            out.status,
            out.last_words()
        )));
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pending_rejoin_names_this_node_and_the_origin() {
        assert_eq!(parse_pending("1 2"), Some((1, 2)));
        assert_eq!(parse_pending(" 3 12\n"), Some((3, 12)));
        assert_eq!(parse_pending("1"), None);
        assert_eq!(parse_pending("a b"), None);
    }

    #[test]
    fn a_rejoining_node_is_stored_with_paths_both_ways() {
        let cfg = SlonConfig::from_params(
            &ocf::Params::from_pairs(
                crate::config::PARAMS,
                &[
                    ("cluster_name", "tusk"),
                    ("conninfo", "dbname=app"),
                    ("sets", "1"),
                    (
                        "admin_conninfo",
                        "1:host=a dbname=app; 2:host=b dbname=app; 3:host='c d'",
                    ),
                ],
            )
            .unwrap(),
            "slon",
        )
        .unwrap();
        assert_eq!(
            store(&cfg, 1, 2).unwrap(),
            "store node (id = 1, comment = 'node 1, rejoined by tusk', event node = 2);\n\
             store path (server = 1, client = 2, conninfo = 'host=a dbname=app');\n\
             store path (server = 2, client = 1, conninfo = 'host=b dbname=app');\n\
             store path (server = 1, client = 3, conninfo = 'host=a dbname=app');\n\
             store path (server = 3, client = 1, conninfo = 'host=''c d''');\n"
        );
    }
}
