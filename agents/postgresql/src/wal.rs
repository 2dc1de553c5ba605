//! WAL positions and timelines, as PostgreSQL prints them.

use ocf::{OcfError, Result};
use std::fmt;
use std::path::Path;
use std::str::FromStr;

/// A WAL location (`0/5000060`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lsn(pub u64);

impl FromStr for Lsn {
    type Err = OcfError;
    fn from_str(s: &str) -> Result<Lsn> {
        let bad = || OcfError::generic(format!("'{s}' is not a WAL location"));
        let (hi, lo) = s.trim().split_once('/').ok_or_else(bad)?;
        let hi = u32::from_str_radix(hi, 16).map_err(|_| bad())?;
        let lo = u32::from_str_radix(lo, 16).map_err(|_| bad())?;
        Ok(Lsn((u64::from(hi) << 32) | u64::from(lo)))
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xffff_ffff)
    }
}

/// How far an instance's WAL reaches: timeline first, then location, so
/// that anything on a newer timeline counts as further.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub timeline: u32,
    pub lsn: Lsn,
}

impl fmt::Display for Position {
    /// `3:0/5000060`, the form published in node attributes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.timeline, self.lsn)
    }
}

impl FromStr for Position {
    type Err = OcfError;
    fn from_str(s: &str) -> Result<Position> {
        let (timeline, lsn) = s
            .split_once(':')
            .ok_or_else(|| OcfError::generic(format!("'{s}' is not timeline:lsn")))?;
        Ok(Position {
            timeline: timeline
                .parse()
                .map_err(|_| OcfError::generic(format!("'{s}': bad timeline")))?,
            lsn: lsn.parse()?,
        })
    }
}

/// A timeline from the WAL file name PostgreSQL reports
/// (`pg_walfile_name()`: the first eight hex digits).
pub fn timeline_of_walfile(name: &str) -> Option<u32> {
    u32::from_str_radix(name.get(..8)?, 16).ok()
}

/// One line of a timeline history file: `parent` ended, and the next
/// timeline began, at `switchpoint`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fork {
    pub parent: u32,
    pub switchpoint: Lsn,
}

/// Parses a `0000000N.history` file: "parentTLI<tab>switchpoint<tab>reason"
/// lines, oldest first.
pub fn parse_history(text: &str) -> Result<Vec<Fork>> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let mut fields = l.split_whitespace();
            let bad = || OcfError::generic(format!("bad timeline history line '{l}'"));
            let parent = fields.next().and_then(|t| t.parse().ok()).ok_or_else(bad)?;
            let switchpoint = fields.next().ok_or_else(bad)?.parse()?;
            Ok(Fork {
                parent,
                switchpoint,
            })
        })
        .collect()
}

/// The timelines whose history files are in `pgdata`/pg_wal.
pub fn history_timelines(pgdata: &Path) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir(pgdata.join("pg_wal")) else {
        return Vec::new();
    };
    let mut found: Vec<u32> = dir
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let timeline = name.strip_suffix(".history")?;
            (timeline.len() == 8).then(|| u32::from_str_radix(timeline, 16).ok())?
        })
        .collect();
    found.sort_unstable();
    found
}

/// The newest timeline a running standby follows, as its pg_wal shows it.
/// SQL names a standby's timeline only from its last restartpoint, which
/// lags, or from its WAL receiver while that streams. A history file proves
/// nothing alone: the WAL receiver fetches the primary's before it streams,
/// also when this node cannot follow it (it replayed past the fork). A
/// segment of that timeline can only have come from streaming it.
pub fn newest_followed_timeline(pgdata: &Path) -> Option<u32> {
    let mut segments = std::collections::BTreeSet::new();
    let mut histories = Vec::new();
    for entry in std::fs::read_dir(pgdata.join("pg_wal")).ok()?.flatten() {
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if let Some(tli) = name.strip_suffix(".history") {
            histories.extend(
                (tli.len() == 8)
                    .then(|| u32::from_str_radix(tli, 16).ok())
                    .flatten(),
            );
        } else if name.len() == 24 || name.strip_suffix(".partial").is_some_and(|n| n.len() == 24) {
            segments.extend(timeline_of_walfile(&name));
        }
    }
    histories.into_iter().filter(|t| segments.contains(t)).max()
}
/// Where a timeline's history file lives, relative to the data directory.
pub fn history_file(timeline: u32) -> String {
    format!("pg_wal/{timeline:08X}.history")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsns_read_and_print_as_postgresql_does() {
        let l: Lsn = "1/5000060".parse().unwrap();
        assert_eq!(l.0, 0x1_0500_0060);
        assert_eq!(l.to_string(), "1/5000060");
        assert_eq!("0/0".parse::<Lsn>().unwrap(), Lsn(0));
        assert!("5000060".parse::<Lsn>().is_err());
        assert!("0/xyz".parse::<Lsn>().is_err());
        assert!("0/3000000".parse::<Lsn>().unwrap() < "0/10000000".parse().unwrap());
    }

    #[test]
    fn a_newer_timeline_is_further_whatever_the_location() {
        let old = Position {
            timeline: 1,
            lsn: "0/9000000".parse().unwrap(),
        };
        let new: Position = "2:0/5000060".parse().unwrap();
        assert!(new > old);
        assert_eq!(new.to_string(), "2:0/5000060");
        assert_eq!(timeline_of_walfile("0000000A0000000000000005"), Some(10));
        assert_eq!(timeline_of_walfile("xyz"), None);
        assert_eq!(history_file(10), "pg_wal/0000000A.history");
    }

    #[test]
    fn reads_a_history_file() {
        let text = "1\t0/3000158\tno recovery target specified\n\n\
                    2\t0/5000000\tno recovery target specified\n";
        assert_eq!(
            parse_history(text).unwrap(),
            [
                Fork {
                    parent: 1,
                    switchpoint: "0/3000158".parse().unwrap()
                },
                Fork {
                    parent: 2,
                    switchpoint: "0/5000000".parse().unwrap()
                }
            ]
        );
        assert!(parse_history("1 nonsense").is_err());
    }

    #[test]
    fn a_history_file_alone_is_no_proof_of_following_its_timeline() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(newest_followed_timeline(dir.path()), None);
        assert!(history_timelines(dir.path()).is_empty());
        std::fs::create_dir(dir.path().join("pg_wal")).unwrap();
        for f in [
            "00000002.history",
            "000000020000000000000004",
            "0000000A.history",
            "000000030000000000000005",
            "x.history",
        ] {
            std::fs::write(dir.path().join("pg_wal").join(f), "").unwrap();
        }
        assert_eq!(history_timelines(dir.path()), [2, 10]);
        // Timeline 10's history was fetched, but no WAL of it came.
        assert_eq!(newest_followed_timeline(dir.path()), Some(2));
        std::fs::write(
            dir.path().join("pg_wal/0000000A0000000000000006.partial"),
            "",
        )
        .unwrap();
        assert_eq!(newest_followed_timeline(dir.path()), Some(10));
    }
}
