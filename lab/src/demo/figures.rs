//! The figures a fault ends with, from the client's record and the rows the
//! new primary has, and what the configuration promises about losses.

use std::time::{Duration, Instant};

use crate::harness::workload::Mark;
use crate::harness::WriterReport;

/// The faults the demo injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Power loss of the primary's node.
    Failover,
    /// `pcs resource move pg-clone NODE --promoted`.
    Switchover,
    /// The primary's cable pulled, plugged back once the cluster has dealt
    /// with it.
    Partition,
}

impl Fault {
    pub fn name(self) -> &'static str {
        match self {
            Fault::Failover => "failover",
            Fault::Switchover => "switchover",
            Fault::Partition => "partition",
        }
    }

    /// The moment the figures count from, in words.
    pub fn moment(self) -> &'static str {
        match self {
            Fault::Failover => "the power loss",
            Fault::Switchover => "the move was asked for",
            Fault::Partition => "the cable was pulled",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Figures {
    /// Every write the client had acknowledged since it started.
    pub acknowledged: usize,
    /// Of those, the ones the new primary does not have, but for those
    /// already lost before this fault (an earlier Slony failover's).
    pub lost: Vec<i64>,
    /// How many were already lost before this fault.
    pub earlier_lost: usize,
    /// From the fault to the first write acknowledged on a new timeline
    /// (by the new primary), and that timeline.
    pub first_on_new_primary: Option<(Duration, u32)>,
    /// The longest time without an acknowledged write, from the last one
    /// before the fault to the end.
    pub longest_gap: Option<Duration>,
    /// Attempts after the fault that failed, or committed without the
    /// synchronous standby's confirmation.
    pub failed: usize,
    pub unconfirmed: usize,
}

impl Figures {
    /// `present`: the values in the new primary's table, read after the
    /// report (so every value the report holds was committed by then);
    /// `earlier`: the writes already lost before the fault.
    pub fn of(
        report: &WriterReport,
        fault: Instant,
        end: Instant,
        present: &[i64],
        earlier: &[i64],
    ) -> Figures {
        let lost = report.lost(present);
        Figures {
            acknowledged: report.acknowledged.len(),
            earlier_lost: lost.iter().filter(|n| earlier.contains(n)).count(),
            lost: lost.into_iter().filter(|n| !earlier.contains(n)).collect(),
            first_on_new_primary: report
                .first_ack_on_new_timeline(fault)
                .map(|(at, timeline)| (at - fault, timeline)),
            longest_gap: report.longest_gap(fault, end),
            failed: report
                .failures
                .iter()
                .filter(|(at, _)| *at > fault && *at <= end)
                .count(),
            unconfirmed: report
                .unconfirmed
                .iter()
                .filter(|(_, at)| *at > fault && *at <= end)
                .count(),
        }
    }

    /// `role`: what the server taking writes is called ("primary",
    /// "origin"); `mark`: what the client records of it.
    pub fn render(&self, primary: &str, fault: Fault, role: &str, mark: Mark) -> String {
        let secs = |d: Duration| format!("{:.1} s", d.as_secs_f64());
        let word = mark.word();
        let first = match self.first_on_new_primary {
            Some((d, timeline)) => {
                format!("{} after {} ({word} {timeline})", secs(d), fault.moment())
            }
            None => "none yet".to_string(),
        };
        let lost = if self.lost.is_empty() && self.earlier_lost > 0 {
            format!(
                "0 of {} (every one is on {primary} but the {} lost before this fault)",
                self.acknowledged, self.earlier_lost
            )
        } else if self.lost.is_empty() {
            format!("0 of {} (every one is on {primary})", self.acknowledged)
        } else {
            let shown: Vec<String> = self.lost.iter().take(10).map(i64::to_string).collect();
            format!(
                "{} of {}: {}{}",
                self.lost.len(),
                self.acknowledged,
                shown.join(", "),
                if self.lost.len() > 10 { ", ..." } else { "" }
            )
        };
        let label = format!("first write acknowledged by the new {role} {primary}:");
        format!(
            "  {label:<47} {first}\n\
             \x20 longest time without an acknowledged write:   {}\n\
             \x20 attempts that failed meanwhile:               {} ({} more committed unconfirmed)\n\
             \x20 acknowledged writes lost:                     {lost}\n",
            self.longest_gap.map_or("-".to_string(), secs),
            self.failed,
            self.unconfirmed,
        )
    }
}

/// What the agent's `sync` setting promises about acknowledged writes for
/// `fault`, in the demo's words.
pub fn promise(fault: Fault, sync: &str) -> String {
    // What the promotion relies on, and where it does not hold.
    const ELECTION: &str = "a standby is not promoted while another candidate published \
         more WAL at pre-promote; a candidate that publishes nothing within 3 s is not \
         compared (the agent logs a WARNING saying so), and the promise then rests on the \
         promoted standby being the synchronous one";
    match (fault, sync) {
        (Fault::Switchover, _) => format!(
            "sync={sync}: nothing is lost in a planned switchover, whatever the sync setting: \
             the primary is shut down cleanly first, and the target is promoted only once it \
             has replayed that shutdown checkpoint (checked by LSN)."
        ),
        (Fault::Failover, "available") => format!(
            "sync=available: nothing acknowledged is lost when the primary's node dies while \
             a standby streams: a commit returns only once the synchronous standby has flushed \
             it, and {ELECTION}. Not promised when no standby streamed at the time (the \
             primary then writes alone, pg-sync=async); sync=strict promises it then too, by \
             blocking writes instead."
        ),
        (Fault::Partition, "available") => format!(
            "sync=available with fencing: nothing acknowledged is lost. The cut-off primary's \
             commits still wait for its synchronous standby, which it cannot reach, and it is \
             fenced (in about 5 s) long before its WAL senders give that standby up \
             (wal_sender_timeout, 60 s) and it could write alone (clients here cannot reach it \
             anyway); {ELECTION}. sync=strict promises it whatever the timing."
        ),
        (Fault::Failover | Fault::Partition, "strict") => format!(
            "sync=strict: nothing acknowledged is lost: every commit waits for a synchronous \
             standby, and {ELECTION}."
        ),
        (Fault::Failover | Fault::Partition, other) => format!(
            "sync={other}: no promise: commits do not wait for a standby, so what the primary \
             had not sent yet is lost with it."
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_come_from_the_report_and_the_table() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let report = WriterReport {
            acknowledged: vec![(1, at(0)), (2, at(100)), (5, at(4100)), (6, at(4200))],
            timelines: vec![(1, 1), (2, 1), (5, 2), (6, 2)],
            unconfirmed: vec![],
            failures: vec![
                (at(50), "before".into()),
                (at(1000), "a".into()),
                (at(2000), "b".into()),
            ],
        };
        let fault = at(150);
        let f = Figures::of(&report, fault, at(5000), &[1, 2, 5, 6], &[]);
        assert_eq!(f.acknowledged, 4);
        assert!(f.lost.is_empty());
        assert_eq!(
            f.first_on_new_primary,
            Some((Duration::from_millis(3950), 2))
        );
        assert_eq!(f.longest_gap, Some(Duration::from_millis(4000)));
        assert_eq!(f.failed, 2);
        let text = f.render("node2", Fault::Failover, "primary", Mark::Timeline);
        assert!(
            text.contains("4.0 s after the power loss (timeline 2)"),
            "{text}"
        );
        assert!(text.contains("0 of 4 (every one is on node2)"), "{text}");

        let f = Figures::of(&report, fault, at(5000), &[1, 5, 6], &[]);
        assert_eq!(f.lost, vec![2]);
        // Lost by an earlier fault: not this one's.
        let later = Figures::of(&report, fault, at(5000), &[1, 5, 6], &[2]);
        assert!(later.lost.is_empty());
        assert!(later
            .render("node2", Fault::Switchover, "origin", Mark::SlonyNode)
            .contains("0 of 4 (every one is on node2 but the 1 lost before this fault)"));
        assert!(f
            .render("node2", Fault::Failover, "primary", Mark::Timeline)
            .contains("1 of 4: 2\n"));
        let text = f.render("node2", Fault::Switchover, "origin", Mark::SlonyNode);
        assert!(
            text.contains("new origin node2:") && text.contains("(Slony node 2)"),
            "{text}"
        );
    }

    #[test]
    fn each_fault_says_which_setting_promises_what() {
        assert!(promise(Fault::Switchover, "off").contains("whatever the sync setting"));
        assert!(promise(Fault::Failover, "available").contains("Not promised when no standby"));
        assert!(promise(Fault::Partition, "available").contains("fenced"));
        assert!(promise(Fault::Failover, "off").contains("no promise"));
    }
}
