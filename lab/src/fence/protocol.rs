//! One request line, one answer line, over `DIR/fence.sock`.
//!
//! Requests: `ping`, `list`, `status NODE`, `off NODE`, `on NODE`,
//! `reboot NODE`, each optionally followed by `from=HOST` (for the daemon's
//! log).
//! Answers: `ok`, `ok on`, `ok off`, `ok NODE...`, or `error MESSAGE`.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};

pub const SOCKET: &str = "fence.sock";

pub fn socket_path(lab_dir: &Path) -> PathBuf {
    lab_dir.join(SOCKET)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Ping,
    List,
    Status(String),
    Off(String),
    On(String),
    /// Off, then on, both done by the daemon: like a power switch's power
    /// cycle, it completes when the node asking is the one switched off (a
    /// node fencing itself, as the only node of a one-node lab does), whose
    /// agent dies at the off.
    Reboot(String),
}

impl Request {
    pub fn render(&self, from: &str) -> String {
        let body = match self {
            Request::Ping => "ping".to_string(),
            Request::List => "list".to_string(),
            Request::Status(n) => format!("status {n}"),
            Request::Off(n) => format!("off {n}"),
            Request::On(n) => format!("on {n}"),
            Request::Reboot(n) => format!("reboot {n}"),
        };
        format!("{body} from={from}\n")
    }

    /// The request and who sent it.
    pub fn parse(line: &str) -> Result<(Request, String)> {
        let mut words: Vec<&str> = line.split_whitespace().collect();
        let from = match words.last() {
            Some(w) if w.starts_with("from=") => words
                .pop()
                .unwrap_or_default()
                .trim_start_matches("from=")
                .to_string(),
            _ => "?".to_string(),
        };
        let node = |words: &[&str]| -> Result<String> {
            match words {
                [_, node] if is_node_name(node) => Ok((*node).to_string()),
                _ => bail!(
                    "expected one node name after {:?}",
                    words.first().unwrap_or(&"")
                ),
            }
        };
        let request = match words.first().copied() {
            Some("ping") => Request::Ping,
            Some("list") => Request::List,
            Some("status") => Request::Status(node(&words)?),
            Some("off") => Request::Off(node(&words)?),
            Some("on") => Request::On(node(&words)?),
            Some("reboot") => Request::Reboot(node(&words)?),
            _ => bail!("unknown request {line:?}"),
        };
        Ok((request, from))
    }
}

/// Node names are plain words; anything else is refused before it reaches
/// a command line.
pub fn is_node_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 12
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Sends one request and returns the answer after `ok` (e.g. `on`), or the
/// daemon's error.
pub fn call(socket: &Path, request: &Request, from: &str, timeout: Duration) -> Result<String> {
    let mut stream = UnixStream::connect(socket).with_context(|| {
        format!(
            "connecting to the lab fence daemon at {} (is the lab up?)",
            socket.display()
        )
    })?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(request.render(from).as_bytes())?;
    let mut answer = String::new();
    BufReader::new(stream)
        .read_line(&mut answer)
        .context("reading the fence daemon's answer")?;
    parse_answer(&answer)
}

pub fn parse_answer(answer: &str) -> Result<String> {
    let answer = answer.trim_end();
    if answer == "ok" {
        return Ok(String::new());
    }
    if let Some(rest) = answer.strip_prefix("ok ") {
        return Ok(rest.to_string());
    }
    match answer.strip_prefix("error ") {
        Some(message) => Err(anyhow!("fence daemon: {message}")),
        None => Err(anyhow!("fence daemon gave no answer (got {answer:?})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_with_their_sender() {
        for r in [
            Request::Ping,
            Request::List,
            Request::Status("node2".into()),
            Request::Off("node3".into()),
            Request::On("node1".into()),
            Request::Reboot("node2".into()),
        ] {
            assert_eq!(
                Request::parse(&r.render("node1")).unwrap(),
                (r, "node1".to_string())
            );
        }
    }

    #[test]
    fn odd_node_names_are_refused() {
        assert!(Request::parse("off node1;reboot").is_err());
        assert!(Request::parse("off").is_err());
        assert!(Request::parse("off a b").is_err());
    }

    #[test]
    fn answers_are_read() {
        assert_eq!(parse_answer("ok on\n").unwrap(), "on");
        assert_eq!(parse_answer("ok\n").unwrap(), "");
        assert!(parse_answer("error no such node\n")
            .unwrap_err()
            .to_string()
            .contains("no such node"));
        assert!(parse_answer("").is_err());
    }
}
