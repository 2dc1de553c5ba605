//! slonik, for the promotable role's MOVE SET and FAILOVER: a script with
//! the preamble built from the parameters (every value quoted for slonik),
//! run as the OS user without a shell, killed at the action's deadline.

use crate::config::SlonConfig;
use crate::quote::slonik_literal;
use ocf::{command, info, Deadline, OcfError, OsUser, Result};
use pgclient::slony::ClusterName;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

/// `cluster name = NAME;` and one `node N admin conninfo = '...';` per node.
pub fn preamble(cluster: &ClusterName, admin: &[(u32, String)]) -> Result<String> {
    let mut s = format!("cluster name = {cluster};\n");
    for (node, conninfo) in admin {
        s.push_str(&format!(
            "node {node} admin conninfo = {};\n",
            slonik_literal(conninfo)?
        ));
    }
    Ok(s)
}

/// A planned move of `sets` from `from` to `to`: every set locked, then
/// moved, then the wait until the new origin has confirmed the move, at
/// most `timeout_s` seconds (slonik's own bound; the deadline kills it too).
/// The wait reads the new origin's own `sl_confirm` (`wait on = to`): the
/// confirmation is there as soon as it processed the move, while on the
/// old origin it appears only when the old origin's slon fetches it (up to
/// a polling interval later, or never when that slon is stopped).
pub fn move_sets(sets: &[u32], from: u32, to: u32, timeout_s: u64) -> String {
    let mut s = String::new();
    for set in sets {
        s.push_str(&format!("lock set (id = {set}, origin = {from});\n"));
    }
    for set in sets {
        s.push_str(&format!(
            "move set (id = {set}, old origin = {from}, new origin = {to});\n"
        ));
    }
    s.push_str(&format!(
        "wait for event (origin = {from}, confirmed = {to}, wait on = {to}, timeout = {});\n",
        timeout_s.max(1)
    ));
    s
}

/// What a failed move leaves: the sets locked on the old origin.
pub fn unlock_sets(sets: &[u32], origin: u32) -> String {
    sets.iter()
        .map(|set| format!("unlock set (id = {set}, origin = {origin});\n"))
        .collect()
}

/// FAILOVER of `failed` to `backup`, then DROP NODE of `failed` with the
/// new origin as event node: the failed node can only come back rebuilt.
pub fn failover(failed: u32, backup: u32) -> String {
    format!(
        "failover (id = {failed}, backup node = {backup});\n\
         drop node (id = {failed}, event node = {backup});\n"
    )
}

/// Runs `commands` after the preamble; the error names slonik's last words.
pub fn run(cfg: &SlonConfig, user: &OsUser, commands: &str, deadline: &Deadline) -> Result<()> {
    let script = format!(
        "{}{commands}",
        preamble(&cfg.instance.cluster, &cfg.origin.admin_conninfo)?
    );
    // The script holds the admin conninfos (maybe passwords): the user's
    // own file, mode 0600, next to the pid file, removed afterwards.
    let path = PathBuf::from(format!("{}.slonik", cfg.instance.pid_file.display()));
    let owner = Some((user.uid, user.gid));
    ocf::fs::create_owned(&path, 0o600, owner)
        .and_then(|()| ocf::fs::open_append_owned(&path, 0o600, owner))
        .and_then(|mut f| f.write_all(script.as_bytes()))
        .map_err(|e| OcfError::generic(format!("cannot write {}: {e}", path.display())))?;
    let mut cmd = user.command(&cfg.origin.slonik);
    cmd.arg(&path);
    let started = Instant::now();
    let out = command::run(cmd, deadline);
    let _ = std::fs::remove_file(&path);
    let out = out?;
    let took = started.elapsed();
    if !out.status.success() {
        return Err(OcfError::generic(format!(
            "slonik failed ({}) after {:.1} s: {}",
            out.status,
            took.as_secs_f64(),
            out.last_words()
        )));
    }
    info!(
        "slonik: {} in {:.2} s",
        summary(commands),
        took.as_secs_f64()
    );
    Ok(())
}

/// The commands of a script without their arguments, which may hold a
/// conninfo with a password: `store node, store path, store path`.
pub fn summary(commands: &str) -> String {
    commands
        .lines()
        .filter_map(|l| l.split('(').next())
        .map(|c| c.trim().trim_end_matches(';'))
        .filter(|c| !c.is_empty())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_preamble_quotes_every_conninfo_for_slonik() {
        let c = ClusterName::parse("Tusk_A$1").unwrap();
        let p = preamble(
            &c,
            &[
                (1, "host=db1 dbname=app".into()),
                (2, "host=db2 password='it''s'; drop".into()),
            ],
        )
        .unwrap();
        assert_eq!(
            p,
            "cluster name = Tusk_A$1;\n\
             node 1 admin conninfo = 'host=db1 dbname=app';\n\
             node 2 admin conninfo = 'host=db2 password=''it''''s''; drop';\n"
        );
        assert!(preamble(&c, &[(1, "a\0b".into())]).is_err());
    }

    #[test]
    fn the_log_names_the_commands_and_no_argument() {
        assert_eq!(
            summary(
                "store path (server = 1, client = 2, conninfo = 'password=x');\nrestart node 1;\n"
            ),
            "store path, restart node 1"
        );
    }

    #[test]
    fn a_planned_move_locks_every_set_before_moving_any() {
        assert_eq!(
            move_sets(&[1, 2], 1, 2, 30),
            "lock set (id = 1, origin = 1);\nlock set (id = 2, origin = 1);\n\
             move set (id = 1, old origin = 1, new origin = 2);\n\
             move set (id = 2, old origin = 1, new origin = 2);\n\
             wait for event (origin = 1, confirmed = 2, wait on = 2, timeout = 30);\n"
        );
        assert!(move_sets(&[1], 1, 2, 0).contains("timeout = 1)"));
        assert_eq!(
            unlock_sets(&[1, 2], 1),
            "unlock set (id = 1, origin = 1);\nunlock set (id = 2, origin = 1);\n"
        );
        assert_eq!(
            failover(1, 2),
            "failover (id = 1, backup node = 2);\ndrop node (id = 1, event node = 2);\n"
        );
    }
}
