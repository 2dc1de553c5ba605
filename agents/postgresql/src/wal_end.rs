//! Where a stopped instance's WAL really ends, and on which timeline: what
//! decides whether it can follow a primary that forked from its timeline.
//!
//! pg_rewind's own rule for a cleanly stopped instance: the later of the
//! minimum recovery ending location and the end of the latest checkpoint
//! record (a primary's shutdown checkpoint is its last record; a standby
//! never flushed a page past its minimum recovery point). A crashed
//! instance replays, at its next start, every valid record of its WAL from
//! the checkpoint's redo location on: its end is the end of that WAL, read
//! with pg_waldump. Where neither can be read, the end is unknown.

use crate::controldata::{ClusterState, ControlData};
use crate::wal::Lsn;
use ocf::{command, debug, Deadline, OsUser};
use std::path::Path;

/// Where this instance's WAL ends, as its next start will see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalEnd {
    /// The timeline the WAL ends on.
    pub timeline: u32,
    /// `None`: unknown (a crash whose WAL could not be read).
    pub end: Option<Lsn>,
    /// It last ran as a primary on `timeline` (a cleanly stopped or crashed
    /// primary, not a base backup taken from one).
    pub was_primary: bool,
}

/// What was read from the WAL itself, for [`judge`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WalRead {
    /// The end of the latest checkpoint record.
    pub checkpoint_end: Option<Lsn>,
    /// After a crash: the end of the last valid record from the redo
    /// location on, on the checkpoint's timeline.
    pub crash_end: Option<Lsn>,
}

/// The pure rule. `backup_label`: the data directory is a base backup not
/// yet started (pg_control then says "in production", copied from the
/// primary it was taken from).
pub fn judge(control: &ControlData, backup_label: bool, read: WalRead) -> WalEnd {
    let at_checkpoint = |end| WalEnd {
        timeline: control.timeline,
        end,
        was_primary: false,
    };
    match control.state {
        ClusterState::ShutDown => WalEnd {
            was_primary: !backup_label,
            ..at_checkpoint(read.checkpoint_end)
        },
        ClusterState::ShutDownInRecovery => match read.checkpoint_end {
            Some(c) if control.min_recovery_end > c => WalEnd {
                timeline: control.min_recovery_timeline.max(control.timeline),
                end: Some(control.min_recovery_end),
                was_primary: false,
            },
            end => at_checkpoint(end),
        },
        // A crashed standby that crossed into a newer timeline since its
        // last restartpoint: its WAL is on two timelines, and the one
        // pg_waldump reads ends at the switch.
        _ if control.min_recovery_timeline > control.timeline => WalEnd {
            timeline: control.min_recovery_timeline,
            end: None,
            was_primary: false,
        },
        ref state => WalEnd {
            was_primary: *state == ClusterState::InProduction && !backup_label,
            ..at_checkpoint(read.crash_end.map(|e| e.max(control.min_recovery_end)))
        },
    }
}

/// Reads what [`judge`] needs from the WAL in pgdata, as the server's
/// user, and judges. Each read is a pg_waldump run; one that fails leaves
/// the end unknown (and is logged at debug level).
pub fn find(
    user: &OsUser,
    bindir: &Path,
    pgdata: &Path,
    control: &ControlData,
    deadline: &Deadline,
) -> WalEnd {
    let backup_label = pgdata.join("backup_label").exists();
    let mut read = WalRead::default();
    let clean = matches!(
        control.state,
        ClusterState::ShutDown | ClusterState::ShutDownInRecovery
    );
    let waldump = |timeline: u32, args: &[String]| {
        let mut cmd = user.command(bindir.join("pg_waldump"));
        cmd.arg("--path")
            .arg(pgdata.join("pg_wal"))
            .arg(format!("--timeline={timeline}"))
            .args(args)
            .env("LC_ALL", "C");
        match command::run(cmd, deadline) {
            Ok(out) => Some(out),
            Err(e) => {
                debug!("pg_waldump: {}", e.reason());
                None
            }
        }
    };
    let record_end = |timeline: u32, at: Lsn| {
        let out = waldump(timeline, &[format!("--start={at}"), "--limit=1".into()])?;
        let (start, length) = out.stdout.lines().find_map(parse_record)?;
        (start == at).then(|| {
            end_of_record(
                start,
                length,
                control.wal_block_size,
                control.wal_segment_size,
            )
        })
    };
    if clean {
        // A standby may hold its restartpoint's record in the segment of
        // the timeline it switched to.
        read.checkpoint_end = record_end(control.timeline, control.checkpoint).or_else(|| {
            (control.min_recovery_timeline > control.timeline)
                .then(|| record_end(control.min_recovery_timeline, control.checkpoint))?
        });
    } else if control.min_recovery_timeline <= control.timeline {
        // --quiet: no line per record; the reader stops at the first record
        // that is not valid, which crash recovery stops at too.
        let stop = waldump(
            control.timeline,
            &[format!("--start={}", control.redo), "--quiet".into()],
        )
        .and_then(|out| {
            let stop = where_it_stopped(&out.stderr, control.wal_segment_size);
            if stop.is_none() {
                debug!(
                    "pg_waldump stopped without saying where: {}",
                    out.last_words()
                );
            }
            stop
        });
        read.crash_end = match stop {
            Some(Stop::After(at)) => record_end(control.timeline, at),
            Some(Stop::Before(end)) => Some(end),
            None => None,
        };
    }
    let end = judge(control, backup_label, read);
    debug!("WAL end: {end:?} from {read:?}");
    end
}

/// Where a WAL record that starts at `start` and is `length` bytes long
/// ends, as PostgreSQL counts it (the next record's start, the position a
/// promotion's timeline switch is written at): its bytes continue after
/// each page header it crosses (24 bytes, 40 at a segment's first page),
/// and records start 8-byte aligned.
pub fn end_of_record(start: Lsn, length: u32, block: u64, segment: u64) -> Lsn {
    const SHORT_PAGE_HEADER: u64 = 24;
    const LONG_PAGE_HEADER: u64 = 40;
    let mut at = start.0;
    let mut left = u64::from(length);
    loop {
        let page_end = (at / block + 1) * block;
        if left <= page_end - at {
            at += left;
            break;
        }
        left -= page_end - at;
        at = page_end
            + if page_end.is_multiple_of(segment) {
                LONG_PAGE_HEADER
            } else {
                SHORT_PAGE_HEADER
            };
    }
    Lsn((at + 7) & !7)
}

/// A record line of pg_waldump (PostgreSQL 12 to 17): `rmgr: XLOG len
/// (rec/tot): 114/ 114, tx: 0, lsn: 0/015260C0, prev ...`: its start and
/// total length.
pub fn parse_record(line: &str) -> Option<(Lsn, u32)> {
    let (_, length) = line.split_once("len (rec/tot):")?;
    let (_, total) = length.split_once('/')?;
    let total = total.split(',').next()?.trim().parse().ok()?;
    let (_, lsn) = line.split_once(" lsn: ")?;
    let lsn = lsn.split(',').next()?.parse().ok()?;
    Some((lsn, total))
}

/// Where pg_waldump stopped reading the WAL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The record starting here was the last valid one.
    After(Lsn),
    /// The next segment file is missing: the WAL ends at most here, where
    /// that segment starts (a segment switch fills the previous one).
    Before(Lsn),
}

/// pg_waldump's last words when it reaches the end of the WAL: `error in
/// WAL record at 0/1526F30: invalid record length at 0/15270C8: wanted 24,
/// got 0` names the last valid record; `could not find file
/// "000000020000000000000006"` the segment it found missing.
pub fn where_it_stopped(stderr: &str, segment_size: u64) -> Option<Stop> {
    if let Some((_, rest)) = stderr.split_once("error in WAL record at ") {
        return Some(Stop::After(rest.split(':').next()?.parse().ok()?));
    }
    let (_, rest) = stderr.split_once("could not find file \"")?;
    let name = rest.split('"').next()?;
    let name = name.rsplit('/').next()?;
    if name.len() != 24 || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let high = u64::from_str_radix(&name[8..16], 16).ok()?;
    let low = u64::from_str_radix(&name[16..24], 16).ok()?;
    let segment = high.checked_mul((1u64 << 32) / segment_size)? + low;
    Some(Stop::Before(Lsn(segment.checked_mul(segment_size)?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lsn(s: &str) -> Lsn {
        s.parse().unwrap()
    }

    const BLOCK: u64 = 8192;
    const SEGMENT: u64 = 16 << 20;

    #[test]
    fn a_record_ends_aligned_after_the_page_headers_it_crosses() {
        // Seen in pg_waldump: a 114-byte checkpoint at 0/15260C0, the next
        // record at 0/1526138; a 405-byte commit at 0/1526F30, the end of
        // the WAL at 0/15270C8.
        assert_eq!(
            end_of_record(lsn("0/15260C0"), 114, BLOCK, SEGMENT),
            lsn("0/1526138")
        );
        assert_eq!(
            end_of_record(lsn("0/1526F30"), 405, BLOCK, SEGMENT),
            lsn("0/15270C8")
        );
        // 100 bytes from 40 before a page boundary: 60 continue after the
        // 24-byte header of the next page.
        assert_eq!(
            end_of_record(Lsn(2 * BLOCK - 40), 100, BLOCK, SEGMENT),
            Lsn(2 * BLOCK + 24 + 64)
        );
        // Into a new segment: its first page has the 40-byte header.
        assert_eq!(
            end_of_record(Lsn(SEGMENT - 16), 32, BLOCK, SEGMENT),
            Lsn(SEGMENT + 40 + 16)
        );
        // A full-page image spanning pages: a header per page crossed.
        assert_eq!(
            end_of_record(Lsn(BLOCK + 24), 20000, BLOCK, SEGMENT),
            Lsn(BLOCK + 24 + 20000 + 2 * 24)
        );
        // Ending exactly at a page boundary: no header of the next page.
        assert_eq!(
            end_of_record(Lsn(BLOCK - 64), 64, BLOCK, SEGMENT),
            Lsn(BLOCK)
        );
    }

    #[test]
    fn reads_pg_waldump_lines_and_its_last_words() {
        let line = "rmgr: XLOG        len (rec/tot):    114/   114, tx:          0, \
                    lsn: 0/015260C0, prev 0/01526088, desc: CHECKPOINT_ONLINE redo 0/1526058";
        assert_eq!(parse_record(line), Some((lsn("0/15260C0"), 114)));
        assert_eq!(parse_record("pg_waldump: error: nothing"), None);
        let stderr = "pg_waldump: error: error in WAL record at 0/1526F30: invalid record \
                      length at 0/15270C8: wanted 24, got 0\n";
        assert_eq!(
            where_it_stopped(stderr, SEGMENT),
            Some(Stop::After(lsn("0/1526F30")))
        );
        // Seen after a segment switch (a base backup's) ended the WAL.
        let stderr = "pg_waldump: error: could not find file \"000000020000000000000006\": \
                      No such file or directory\n";
        assert_eq!(
            where_it_stopped(stderr, SEGMENT),
            Some(Stop::Before(lsn("0/6000000")))
        );
        let stderr = "pg_waldump: error: could not find file \"0000000200000001000000FF\"";
        assert_eq!(
            where_it_stopped(stderr, SEGMENT),
            Some(Stop::Before(lsn("1/FF000000")))
        );
        assert_eq!(
            where_it_stopped("pg_waldump: error: could not find file \"x\"", SEGMENT),
            None
        );
        assert_eq!(
            where_it_stopped("pg_waldump: error: out of memory", SEGMENT),
            None
        );
    }

    fn control(state: ClusterState, timeline: u32) -> ControlData {
        ControlData {
            state,
            system_id: "1".into(),
            timeline,
            checkpoint: lsn("0/5000028"),
            redo: lsn("0/5000028"),
            min_recovery_end: Lsn(0),
            min_recovery_timeline: 0,
            wal_block_size: BLOCK,
            wal_segment_size: SEGMENT,
        }
    }

    #[test]
    fn a_clean_primary_ends_with_its_shutdown_checkpoint_record() {
        let read = WalRead {
            checkpoint_end: Some(lsn("0/50000A0")),
            crash_end: None,
        };
        let end = judge(&control(ClusterState::ShutDown, 2), false, read);
        assert_eq!(
            end,
            WalEnd {
                timeline: 2,
                end: Some(lsn("0/50000A0")),
                was_primary: true
            }
        );
        let unread = judge(
            &control(ClusterState::ShutDown, 2),
            false,
            WalRead::default(),
        );
        assert_eq!(unread.end, None, "an unreadable checkpoint: unknown");
    }

    #[test]
    fn a_clean_standby_ends_at_the_later_of_its_recovery_point_and_checkpoint() {
        // Not 0, as it was taken before: a standby that replayed past a
        // fork point has WAL there.
        let mut c = control(ClusterState::ShutDownInRecovery, 1);
        c.min_recovery_end = lsn("0/7000000");
        c.min_recovery_timeline = 2;
        let read = WalRead {
            checkpoint_end: Some(lsn("0/50000A0")),
            crash_end: None,
        };
        let end = judge(&c, false, read);
        assert_eq!((end.timeline, end.end), (2, Some(lsn("0/7000000"))));
        assert!(!end.was_primary);
        c.min_recovery_end = lsn("0/5000000");
        c.min_recovery_timeline = 1;
        assert_eq!(judge(&c, false, read).end, Some(lsn("0/50000A0")));
    }

    #[test]
    fn a_crashed_instance_ends_where_its_valid_wal_ends() {
        let read = WalRead {
            checkpoint_end: None,
            crash_end: Some(lsn("0/6000100")),
        };
        let primary = judge(&control(ClusterState::InProduction, 2), false, read);
        assert_eq!(primary.end, Some(lsn("0/6000100")));
        assert!(primary.was_primary);
        let backup = judge(&control(ClusterState::InProduction, 2), true, read);
        assert!(!backup.was_primary, "a base backup never ran as a primary");
        let standby = judge(&control(ClusterState::InArchiveRecovery, 2), false, read);
        assert_eq!(standby.end, Some(lsn("0/6000100")));
        assert!(!standby.was_primary);
        let unread = judge(
            &control(ClusterState::InArchiveRecovery, 2),
            false,
            WalRead::default(),
        );
        assert_eq!(unread.end, None);
        let mut switched = control(ClusterState::InArchiveRecovery, 2);
        switched.min_recovery_timeline = 3;
        switched.min_recovery_end = lsn("0/6000000");
        let end = judge(&switched, false, read);
        assert_eq!((end.timeline, end.end), (3, None));
    }
}
