//! What pg_control says about a stopped instance: how it was shut down, on
//! which timeline, and where its WAL ends.

use crate::wal::Lsn;
use ocf::{command, Deadline, OcfError, OsUser, Result};
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterState {
    /// A primary shut down cleanly.
    ShutDown,
    /// A standby shut down cleanly.
    ShutDownInRecovery,
    /// Running, or a primary that crashed.
    InProduction,
    /// A standby, running or crashed.
    InArchiveRecovery,
    Other(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlData {
    pub state: ClusterState,
    pub system_id: String,
    pub timeline: u32,
    /// Where the latest checkpoint record starts.
    pub checkpoint: Lsn,
    /// Where replay of the latest checkpoint starts (crash recovery reads
    /// the WAL from here).
    pub redo: Lsn,
    pub min_recovery_end: Lsn,
    pub min_recovery_timeline: u32,
    /// The WAL's page and segment sizes, to tell where a record ends.
    pub wal_block_size: u64,
    pub wal_segment_size: u64,
}

impl ControlData {
    /// Runs pg_controldata as the server's user.
    pub fn read(
        user: &OsUser,
        bindir: &Path,
        pgdata: &Path,
        deadline: &Deadline,
    ) -> Result<ControlData> {
        let mut cmd = user.command(bindir.join("pg_controldata"));
        cmd.arg("-D").arg(pgdata).env("LC_ALL", "C");
        let out = command::run(cmd, deadline)?;
        if !out.status.success() {
            return Err(OcfError::generic(format!(
                "pg_controldata {}: {}",
                pgdata.display(),
                out.last_words()
            )));
        }
        Self::parse(&out.stdout)
    }

    pub fn parse(text: &str) -> Result<ControlData> {
        let field = |name: &str| -> Result<&str> {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .map(str::trim)
                .ok_or_else(|| OcfError::generic(format!("pg_controldata printed no '{name}'")))
        };
        let number = |name: &str| -> Result<u32> {
            field(name)?
                .parse()
                .map_err(|_| OcfError::generic(format!("pg_controldata: bad '{name}'")))
        };
        let size = |name: &str| -> Result<u64> {
            field(name)?
                .parse()
                .ok()
                .filter(|n: &u64| n.is_power_of_two())
                .ok_or_else(|| OcfError::generic(format!("pg_controldata: bad '{name}'")))
        };
        let state = match field("Database cluster state")? {
            "shut down" => ClusterState::ShutDown,
            "shut down in recovery" => ClusterState::ShutDownInRecovery,
            "in production" => ClusterState::InProduction,
            "in archive recovery" => ClusterState::InArchiveRecovery,
            other => ClusterState::Other(other.to_string()),
        };
        Ok(ControlData {
            state,
            system_id: field("Database system identifier")?.to_string(),
            timeline: number("Latest checkpoint's TimeLineID")?,
            checkpoint: field("Latest checkpoint location")?.parse()?,
            redo: field("Latest checkpoint's REDO location")?.parse()?,
            min_recovery_end: field("Minimum recovery ending location")?.parse()?,
            min_recovery_timeline: number("Min recovery ending loc's timeline")?,
            wal_block_size: size("WAL block size")?,
            wal_segment_size: size("Bytes per WAL segment")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRIMARY: &str = "pg_control version number:            1300
Catalog version number:               202209061
Database system identifier:           7441234567890123456
Database cluster state:               shut down
pg_control last modified:             Sun 22 Nov 2026 10:00:00 AM UTC
Latest checkpoint location:           0/5000028
Latest checkpoint's REDO location:    0/5000028
Latest checkpoint's REDO WAL file:    000000020000000000000005
Latest checkpoint's TimeLineID:       2
Latest checkpoint's PrevTimeLineID:   2
Minimum recovery ending location:     0/0
Min recovery ending loc's timeline:   0
WAL block size:                       8192
Bytes per WAL segment:                16777216
";

    #[test]
    fn reads_a_cleanly_stopped_primary() {
        let c = ControlData::parse(PRIMARY).unwrap();
        assert_eq!(c.state, ClusterState::ShutDown);
        assert_eq!(c.system_id, "7441234567890123456");
        assert_eq!(c.timeline, 2);
        assert_eq!(c.checkpoint, "0/5000028".parse().unwrap());
        assert_eq!(c.redo, "0/5000028".parse().unwrap());
        assert_eq!((c.wal_block_size, c.wal_segment_size), (8192, 16 << 20));
    }

    #[test]
    fn reads_a_standby_and_refuses_what_is_not_pg_controldata() {
        let standby = PRIMARY
            .replace("shut down", "shut down in recovery")
            .replace("location:     0/0", "location:     0/6000000")
            .replace("timeline:   0", "timeline:   3");
        let c = ControlData::parse(&standby).unwrap();
        assert_eq!(c.state, ClusterState::ShutDownInRecovery);
        assert_eq!(c.min_recovery_end, "0/6000000".parse().unwrap());
        assert_eq!(c.min_recovery_timeline, 3);
        assert!(ControlData::parse("nothing").is_err());
        let odd = PRIMARY.replace("8192", "8000");
        assert!(ControlData::parse(&odd).is_err());
    }
}
