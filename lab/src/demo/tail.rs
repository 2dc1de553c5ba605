//! Following files that others append to: the client's journal, the
//! nodes' Pacemaker logs (where the agents log their decisions).

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;

use anyhow::{Context, Result};

/// The complete lines appended to a file since the last read.
pub struct LineTail {
    path: PathBuf,
    offset: u64,
    partial: String,
}

impl LineTail {
    /// From the file's current end (or its start, once it exists).
    pub fn from_end(path: PathBuf) -> LineTail {
        let offset = fs::metadata(&path).map_or(0, |m| m.len());
        LineTail {
            path,
            offset,
            partial: String::new(),
        }
    }

    /// Lines completed since the last call; a line still being written
    /// waits for the next. A file that does not exist has no lines.
    pub fn read(&mut self) -> Result<Vec<String>> {
        let mut file = match fs::File::open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("opening {}", self.path.display())),
        };
        if file.metadata()?.len() < self.offset {
            // Rotated or truncated: start over.
            self.offset = 0;
            self.partial.clear();
        }
        file.seek(SeekFrom::Start(self.offset))?;
        // Bounded: what a few seconds of a busy log hold.
        let mut bytes = Vec::new();
        let read = file.take(4 << 20).read_to_end(&mut bytes)?;
        self.offset += read as u64;
        self.partial += &String::from_utf8_lossy(&bytes);
        let mut lines = Vec::new();
        while let Some(end) = self.partial.find('\n') {
            let line: String = self.partial.drain(..=end).collect();
            lines.push(line.trim_end().to_string());
        }
        Ok(lines)
    }
}

/// An OCF agent's own log line in a node's pacemaker.log
/// (`postgresql(pg) Dec 01 22:31:09 WARNING: ...`), without its time of
/// day: `postgresql(pg) WARNING: ...`. Pacemaker's lines, and the agent's
/// stderr as pacemaker-execd repeats it, are not.
pub fn agent_line(line: &str) -> Option<String> {
    let (agent, rest) = line.split_once(' ')?;
    let open = agent.find('(')?;
    if open == 0 || !agent.ends_with(')') {
        return None;
    }
    // Month, day, time.
    let mut words = rest.splitn(4, ' ');
    let (month, day, time) = (words.next()?, words.next()?, words.next()?);
    let is_time = time.len() == 8 && time.bytes().filter(|b| *b == b':').count() == 2;
    if month.len() != 3 || day.parse::<u8>().is_err() || !is_time {
        return None;
    }
    Some(format!("{agent} {}", words.next()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_agents_own_lines_are_taken() {
        assert_eq!(
            agent_line("postgresql(pg) Dec 01 22:31:09 WARNING: node2 published no WAL position at pre-promote: not compared").as_deref(),
            Some("postgresql(pg) WARNING: node2 published no WAL position at pre-promote: not compared")
        );
        assert_eq!(
            agent_line("Dec 01 22:31:09.488 node3 pacemaker-execd     [17] (log_op_output) \tinfo: pg_notify_0[141] error output [ postgresql(pg): WARNING: x ]"),
            None
        );
        assert_eq!(agent_line("(x) Dec 01 22:31:09 INFO: y"), None);
        assert_eq!(agent_line("pgpool(pool) 22:31:09 INFO: y"), None);
    }

    #[test]
    fn lines_are_read_as_they_are_completed() {
        let dir = std::env::temp_dir().join(format!("tusk-lab-tail-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("log");
        fs::write(&path, "old\n").unwrap();
        let mut tail = LineTail::from_end(path.clone());
        assert!(tail.read().unwrap().is_empty());
        use std::io::Write;
        let mut f = fs::OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"one\ntw").unwrap();
        assert_eq!(tail.read().unwrap(), vec!["one"]);
        f.write_all(b"o\n").unwrap();
        assert_eq!(tail.read().unwrap(), vec!["two"]);
        fs::write(&path, "new\n").unwrap();
        assert_eq!(tail.read().unwrap(), vec!["new"]);
        fs::remove_dir_all(&dir).unwrap();
    }
}
