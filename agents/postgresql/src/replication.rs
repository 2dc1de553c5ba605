//! What a running instance says about its replication, in one round trip:
//! its role, timeline and WAL position, its WAL receiver (a standby), and
//! the standbys streaming from it (a primary).

use crate::config::PgConfig;
use crate::slots::{self, Slot};
use crate::sql;
use crate::wal::{self, timeline_of_walfile, Lsn, Position};
use nix::unistd::{Gid, Uid};
use ocf::{Deadline, OcfError, Result};
use pgclient::Rows;

/// One standby as the primary sees it (`pg_stat_replication`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Standby {
    /// Its application_name: the node name, as the agent sets it.
    pub name: String,
    /// `streaming`, `catchup`, `backup`, ...
    pub state: String,
    /// `sync`, `quorum`, `potential` or `async`.
    pub sync_state: String,
    pub flushed: Option<Lsn>,
    /// The walsender's PID: a new one is a new connection.
    pub walsender: i32,
    /// When the walsender started (`backend_start`): with the PID, one
    /// connection for the server's whole life, even when a PID repeats.
    pub connected_at: String,
}

impl Standby {
    /// What a score given for this connection was computed for.
    pub fn connection(&self) -> String {
        format!("{}/{}", self.walsender, self.connected_at)
    }

    pub fn is_streaming(&self) -> bool {
        self.state == "streaming"
    }

    /// The one standby that holds every acknowledged commit (`FIRST 1`).
    /// Under `ANY 1` each shows `quorum`, and none is known to hold a
    /// given commit: their flushed positions tell.
    pub fn is_synchronous(&self) -> bool {
        self.sync_state == "sync"
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replication {
    pub in_recovery: bool,
    /// The primary's current position, or how far a standby received or
    /// replayed.
    pub position: Position,
    pub replayed: Option<Lsn>,
    /// The WAL receiver's status (`streaming`, `waiting`...), if it runs.
    pub receiver: Option<String>,
    /// The timeline of the latest checkpoint (or restartpoint).
    pub checkpoint_timeline: Option<u32>,
    pub sync_names: String,
    pub standbys: Vec<Standby>,
    /// Its physical replication slots.
    pub slots: Vec<Slot>,
    /// Whether max_slot_wal_keep_size bounds what they keep (`None`: no
    /// slot to tell by).
    pub slots_bounded: Option<bool>,
}

impl Replication {
    pub fn timeline(&self) -> u32 {
        self.position.timeline
    }

    pub fn is_streaming(&self) -> bool {
        self.receiver.as_deref() == Some("streaming")
    }
}

// pg_walfile_name() and pg_current_wal_lsn() fail during recovery: CASE
// evaluates them on a primary only. A standby's timeline is the newest of
// what its receiver gets and what it has replayed up to.
const QUERY: &str = "SELECT pg_is_in_recovery(), \
  CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_walfile_name(pg_current_wal_lsn()) END, \
  CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn() END, \
  pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn(), r.status, r.received_tli, \
  (SELECT timeline_id FROM pg_control_checkpoint()), \
  (SELECT min_recovery_end_timeline FROM pg_control_recovery()), \
  current_setting('synchronous_standby_names') \
  FROM (SELECT 1) AS one LEFT JOIN pg_stat_wal_receiver AS r ON true; \
  SELECT application_name, state, sync_state, flush_lsn, pid, \
  extract(epoch FROM backend_start)::numeric(20,6) FROM pg_stat_replication";

/// [`QUERY`] and the slots', in the same round trip.
fn query() -> String {
    format!("{QUERY}; {}", slots::QUERY)
}

/// Asks the local server, as the postmaster's uid and gid.
pub fn observe(cfg: &PgConfig, as_user: (Uid, Gid), deadline: &Deadline) -> Result<Replication> {
    let results = pgclient::query(sql::local(cfg), Some(as_user), deadline, &query())?;
    let mut repl = parse(&results)?;
    // Without a streaming receiver, SQL knows only the timeline of the last
    // restartpoint; the WAL it streamed knows better.
    if repl.in_recovery && !repl.is_streaming() {
        if let Some(newest) = wal::newest_followed_timeline(&cfg.pgdata) {
            repl.position.timeline = repl.position.timeline.max(newest);
        }
    }
    Ok(repl)
}

fn parse(results: &[Rows]) -> Result<Replication> {
    let get = |column| pgclient::value(results, 0, 0, column);
    let lsn = |column| get(column).map(str::parse::<Lsn>).transpose();
    let number = |column| get(column).and_then(|v: &str| v.parse::<u32>().ok());
    let in_recovery = get(0)
        .map(|v| v == "t")
        .ok_or_else(|| OcfError::generic("the replication query returned no row"))?;
    let position = if in_recovery {
        let received = lsn(3)?.unwrap_or_default();
        let replayed = lsn(4)?.unwrap_or_default();
        Position {
            timeline: [number(6), number(7), number(8)]
                .into_iter()
                .flatten()
                .max()
                .unwrap_or(1),
            // After a reconnect the receiver restarts at a segment boundary,
            // behind what was already replayed.
            lsn: received.max(replayed),
        }
    } else {
        Position {
            timeline: get(1)
                .and_then(timeline_of_walfile)
                .ok_or_else(|| OcfError::generic("the primary reported no WAL file name"))?,
            lsn: lsn(2)?.unwrap_or_default(),
        }
    };
    let standbys = results
        .get(1)
        .map(|rows| {
            rows.iter()
                .map(|r| {
                    let text = |i: usize| r.get(i).cloned().flatten().unwrap_or_default();
                    Ok(Standby {
                        name: text(0),
                        state: text(1),
                        sync_state: text(2),
                        flushed: r.get(3).cloned().flatten().map(|v| v.parse()).transpose()?,
                        walsender: text(4).parse().unwrap_or(0),
                        connected_at: text(5),
                    })
                })
                .collect::<Result<Vec<_>>>()
        })
        .transpose()?
        .unwrap_or_default();
    let (slots, slots_bounded) = match results.get(2) {
        Some(rows) => slots::parse(rows)?,
        None => (Vec::new(), None),
    };
    Ok(Replication {
        in_recovery,
        position,
        replayed: lsn(4)?,
        receiver: get(5).map(str::to_string),
        checkpoint_timeline: number(7),
        sync_names: get(9).unwrap_or_default().to_string(),
        standbys,
        slots,
        slots_bounded,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(values: &[Option<&str>]) -> Vec<Option<String>> {
        values.iter().map(|v| v.map(str::to_string)).collect()
    }

    #[test]
    fn reads_a_primary_with_two_standbys() {
        let results = vec![
            vec![row(&[
                Some("f"),
                Some("000000030000000000000005"),
                Some("0/5000108"),
                None,
                None,
                None,
                None,
                Some("2"),
                Some("0"),
                Some("*"),
            ])],
            vec![
                row(&[
                    Some("node2"),
                    Some("streaming"),
                    Some("sync"),
                    Some("0/5000108"),
                    Some("4242"),
                    Some("1796162315.123456"),
                ]),
                row(&[
                    Some("node3"),
                    Some("catchup"),
                    Some("potential"),
                    None,
                    Some("4243"),
                ]),
            ],
        ];
        let r = parse(&results).unwrap();
        assert!(!r.in_recovery);
        assert_eq!(r.position, "3:0/5000108".parse().unwrap());
        assert_eq!(r.sync_names, "*");
        assert_eq!(r.standbys.len(), 2);
        assert!(r.standbys[0].is_streaming() && r.standbys[0].is_synchronous());
        assert_eq!(r.standbys[0].walsender, 4242);
        assert_eq!(r.standbys[0].connection(), "4242/1796162315.123456");
        assert!(!r.standbys[1].is_streaming());
        assert_eq!(r.standbys[1].flushed, None);
    }

    #[test]
    fn a_standby_is_as_far_as_it_received_or_replayed_on_its_newest_timeline() {
        let results = vec![
            vec![row(&[
                Some("t"),
                None,
                None,
                Some("0/4000000"),
                Some("0/4000AB0"),
                Some("streaming"),
                Some("2"),
                Some("1"),
                Some("2"),
                Some(""),
            ])],
            vec![],
        ];
        let r = parse(&results).unwrap();
        assert!(r.in_recovery && r.is_streaming());
        assert_eq!(r.position, "2:0/4000AB0".parse().unwrap());
        assert_eq!(r.replayed, Some("0/4000AB0".parse().unwrap()));

        // Receiver gone (the primary died): the checkpoint's timeline tells.
        let results = vec![vec![row(&[
            Some("t"),
            None,
            None,
            None,
            Some("0/4000AB0"),
            None,
            None,
            Some("3"),
            Some("0"),
            Some(""),
        ])]];
        let r = parse(&results).unwrap();
        assert!(!r.is_streaming());
        assert_eq!(r.timeline(), 3);
        assert!(parse(&[]).is_err());
    }
}
