//! The demo's client: a [`Writer`] in a process of its own that the lab
//! owns (started from the lab's copy of tusk-lab, recorded in its state,
//! ended by `down`), writing a row every 100 ms through the cluster for as
//! long as the lab runs. It reaches the cluster only from inside the lab's
//! switch network namespace. Every attempt goes to `DIR/client.journal`,
//! which each `demo` command reads to narrate and measure.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::tail::LineTail;
use crate::harness::workload::{Entry, Journal, Mark, MonotonicClock, Writer, WriterReport};
use crate::process::{self, wait_for};
use crate::state::MARKER;
use crate::Lab;

/// How often the client writes.
pub const EVERY: Duration = Duration::from_millis(100);

pub fn journal_path(dir: &Path) -> PathBuf {
    dir.join("client.journal")
}

/// Starts the client writing through `conninfo`, recording `mark` of the
/// server that acknowledged each write, and waits for its first
/// acknowledged writes.
pub fn start(lab: &Lab, conninfo: &str, mark: Mark) -> Result<()> {
    let dir = lab
        .dir()
        .to_str()
        .context("the lab directory is not UTF-8")?;
    lab.start_client(&[
        "demo-client",
        "--lab",
        dir,
        "--conninfo",
        conninfo,
        "--mark",
        mark.name(),
    ])?;
    wait_for(
        "the client's first 10 acknowledged writes",
        Duration::from_secs(30),
        || {
            if !is_running(lab) {
                bail!(
                    "the client ended: {}",
                    process::tail(&lab.dir().join("client.log"), 10).unwrap_or_default()
                );
            }
            Ok(report(lab)?.acknowledged.len() >= 10)
        },
    )
}

/// The client process (`tusk-lab demo-client`): writes until it is killed,
/// or until the lab's directory is gone (a `down` that could not end it).
pub fn run(dir: &Path, conninfo: &str, mark: Mark) -> Result<()> {
    let lab = Lab::attach(dir)?;
    let journal = Journal::open(&journal_path(dir))?;
    let writer =
        Writer::start_journaled(&lab.switch_netns()?, conninfo, EVERY, mark, Some(journal))?;
    while dir.join(MARKER).exists() {
        std::thread::sleep(Duration::from_secs(1));
    }
    drop(writer);
    Ok(())
}

pub fn is_running(lab: &Lab) -> bool {
    lab.state()
        .is_ok_and(|s| s.client.is_some_and(|c| c.is_running()))
}

/// Everything the client recorded so far.
pub fn report(lab: &Lab) -> Result<WriterReport> {
    let path = journal_path(lab.dir());
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    Ok(WriterReport::from_journal(&text, &MonotonicClock::now()))
}

/// Reads what the client records from now on, as it comes.
pub struct Tail(LineTail);

impl Tail {
    /// From the journal's current end.
    pub fn from_end(lab: &Lab) -> Tail {
        Tail(LineTail::from_end(journal_path(lab.dir())))
    }

    /// The entries completed since the last call.
    pub fn read(&mut self) -> Result<Vec<(Instant, Entry)>> {
        let clock = MonotonicClock::now();
        Ok(self
            .0
            .read()?
            .iter()
            .filter_map(|line| Journal::parse(line))
            .map(|(at, entry)| (clock.instant(at), entry))
            .collect())
    }
}

/// What the client's record tells while a fault plays out: one line when
/// writes start failing, one when they are acknowledged again. "Timeline"
/// is the client's [`Mark`]: a timeline, or a Slony origin's node id.
#[derive(Debug, Clone)]
pub struct ClientNarration {
    failing: bool,
    timeline: u32,
    /// The timeline before the fault.
    before: u32,
    word: &'static str,
    /// Writes acknowledged on a timeline other than `before` (by another
    /// server).
    pub acknowledged_on_new_timeline: usize,
}

impl ClientNarration {
    pub fn new(timeline_before: u32, mark: Mark) -> ClientNarration {
        ClientNarration {
            failing: false,
            timeline: timeline_before,
            before: timeline_before,
            word: mark.word(),
            acknowledged_on_new_timeline: 0,
        }
    }

    pub fn feed(&mut self, entry: &Entry) -> Option<String> {
        match entry {
            Entry::Acknowledged(_, timeline) => {
                if *timeline != self.before {
                    self.acknowledged_on_new_timeline += 1;
                }
                let word = self.word;
                let line = if self.failing {
                    Some(format!(
                        "client: writes are acknowledged again ({word} {timeline})"
                    ))
                } else if *timeline != self.timeline {
                    Some(format!(
                        "client: writes are acknowledged on {word} {timeline}"
                    ))
                } else {
                    None
                };
                self.failing = false;
                self.timeline = *timeline;
                line
            }
            Entry::Failed(message) if !self.failing => {
                self.failing = true;
                Some(format!(
                    "client: writes fail ({})",
                    super::narrate::short_error(message)
                ))
            }
            Entry::Unconfirmed(_) if !self.failing => {
                self.failing = true;
                Some(
                    "client: a commit was not confirmed by a synchronous standby within 2 s (not counted as acknowledged)"
                        .to_string(),
                )
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_is_told_once_and_its_end_once() {
        let mut n = ClientNarration::new(1, Mark::Timeline);
        assert_eq!(n.feed(&Entry::Acknowledged(1, 1)), None);
        assert_eq!(
            n.feed(&Entry::Failed(
                "db error: FATAL: terminating connection".into()
            )),
            Some("client: writes fail (FATAL: terminating connection)".into())
        );
        assert_eq!(n.feed(&Entry::Failed("timeout".into())), None);
        assert_eq!(n.feed(&Entry::Unconfirmed(3)), None);
        assert_eq!(
            n.feed(&Entry::Acknowledged(4, 2)),
            Some("client: writes are acknowledged again (timeline 2)".into())
        );
        assert_eq!(n.feed(&Entry::Acknowledged(5, 2)), None);
        assert_eq!(n.acknowledged_on_new_timeline, 2);
        // A Slony origin moved back to node 1: told, and counted.
        let mut n = ClientNarration::new(2, Mark::SlonyNode);
        assert_eq!(
            n.feed(&Entry::Acknowledged(7, 1)),
            Some("client: writes are acknowledged on Slony node 1".into())
        );
        assert_eq!(n.acknowledged_on_new_timeline, 1);
    }
}
