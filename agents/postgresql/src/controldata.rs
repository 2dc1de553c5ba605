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
    pub min_recovery_end: Lsn,
    pub min_recovery_timeline: u32,
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
            min_recovery_end: field("Minimum recovery ending location")?.parse()?,
            min_recovery_timeline: number("Min recovery ending loc's timeline")?,
        })
    }

    /// Stopped as a standby (cleanly or not): it wrote no WAL of its own.
    pub fn was_standby(&self) -> bool {
        matches!(
            self.state,
            ClusterState::ShutDownInRecovery | ClusterState::InArchiveRecovery
        )
    }

    /// Stopped cleanly: every WAL record this instance wrote or replayed
    /// ends at its last checkpoint (a primary) or at the minimum recovery
    /// point (a standby). After a crash nobody knows without reading the WAL.
    pub fn clean_end(&self) -> Option<Lsn> {
        match self.state {
            ClusterState::ShutDown => Some(self.checkpoint),
            ClusterState::ShutDownInRecovery => Some(self.checkpoint.max(self.min_recovery_end)),
            _ => None,
        }
    }

    /// The newest timeline this instance knows of.
    pub fn latest_timeline(&self) -> u32 {
        self.timeline.max(self.min_recovery_timeline)
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
";

    #[test]
    fn reads_a_cleanly_stopped_primary() {
        let c = ControlData::parse(PRIMARY).unwrap();
        assert_eq!(c.state, ClusterState::ShutDown);
        assert_eq!(c.system_id, "7441234567890123456");
        assert_eq!(c.timeline, 2);
        assert_eq!(c.checkpoint, "0/5000028".parse().unwrap());
        assert_eq!(c.clean_end(), Some("0/5000028".parse().unwrap()));
        assert_eq!(c.latest_timeline(), 2);
    }

    #[test]
    fn a_crashed_instance_has_no_known_end() {
        let text = PRIMARY.replace("shut down", "in production");
        let c = ControlData::parse(&text).unwrap();
        assert_eq!(c.state, ClusterState::InProduction);
        assert_eq!(c.clean_end(), None);
        let standby = PRIMARY
            .replace("shut down", "shut down in recovery")
            .replace("location:     0/0", "location:     0/6000000")
            .replace("timeline:   0", "timeline:   3");
        let c = ControlData::parse(&standby).unwrap();
        assert_eq!(c.clean_end(), Some("0/6000000".parse().unwrap()));
        assert_eq!(c.latest_timeline(), 3);
        assert!(ControlData::parse("nothing").is_err());
    }
}
