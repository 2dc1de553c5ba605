//! The lab's state directory and its record of what runs.
//!
//! Several processes change the record: `tusk-lab` commands, a test that owns
//! the lab, and the fence daemon that powers nodes off and on when Pacemaker
//! asks. Every change happens under an exclusive lock on `DIR/lock`, and the
//! file is replaced atomically, so a reader never sees half a record.
//!
//! The format is one line per thing, `key=value` words after the kind:
//!
//! ```text
//! tusk-lab-state 1
//! exe /tmp/tusk-lab/bin/tusk-lab
//! switch init=812:4410 pidns=pid:[4026532301] netns=net:[4026532303] unshare=811:4409
//! fence-daemon 830:4470
//! client 850:4480
//! node node1 addr=10.213.77.11 partitioned=no init=840:4471 pidns=... netns=... unshare=839:4471
//! node node2 addr=10.213.77.12 partitioned=no off
//! ```

use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use crate::process::Recorded;

const STATE_FILE: &str = "lab.state";
const LOCK_FILE: &str = "lock";
/// Marks a directory as a lab's, so that `down` never removes anything else.
pub const MARKER: &str = ".tusk-lab";
const FORMAT_LINE: &str = "tusk-lab-state 1";

/// The processes that keep one set of namespaces alive.
///
/// `unshare --fork` stays in the new mount and network namespaces as the
/// parent of the init, so both are recorded: the init is what the lab kills
/// (the kernel then kills its whole PID namespace), and the namespaces are
/// gone only once `unshare` has exited too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub init: Recorded,
    /// `/proc/INIT/ns/pid` when recorded: a PID in another namespace is not ours.
    pub pidns: String,
    pub netns: String,
    pub unshare: Recorded,
}

impl Holder {
    /// True while the recorded init runs in the recorded PID namespace.
    pub fn is_running(&self) -> bool {
        self.init.is_running()
            && crate::process::namespace(self.init.pid, "pid").as_deref() == Some(&self.pidns)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRecord {
    pub name: String,
    pub addr: Ipv4Addr,
    /// Its cable is out of the switch; survives a crash and a restart, as an
    /// unplugged cable would.
    pub partitioned: bool,
    /// `None` while the node is powered off (crashed or fenced).
    pub holder: Option<Holder>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    /// The lab's own copy of the tusk-lab binary, run as every node's init,
    /// the fence daemon and the fence agent.
    pub exe: PathBuf,
    pub switch: Option<Holder>,
    pub fence_daemon: Option<Recorded>,
    /// The demo's client (`tusk-lab demo-client`), writing through the
    /// cluster for as long as the lab runs.
    pub client: Option<Recorded>,
    pub nodes: Vec<NodeRecord>,
}

impl State {
    pub fn node(&self, name: &str) -> Result<&NodeRecord> {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .ok_or_else(|| self.no_such_node(name))
    }

    pub fn node_mut(&mut self, name: &str) -> Result<&mut NodeRecord> {
        let err = self.no_such_node(name);
        self.nodes.iter_mut().find(|n| n.name == name).ok_or(err)
    }

    fn no_such_node(&self, name: &str) -> anyhow::Error {
        let names: Vec<&str> = self.nodes.iter().map(|n| n.name.as_str()).collect();
        anyhow!("no node {name:?} in this lab (nodes: {})", names.join(", "))
    }

    pub fn path(dir: &Path) -> PathBuf {
        dir.join(STATE_FILE)
    }

    pub fn load(dir: &Path) -> Result<State> {
        let path = State::path(dir);
        let text =
            fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        State::parse(&text).with_context(|| format!("parsing {}", path.display()))
    }

    /// Replaces the record atomically. Call with the lock held.
    pub fn save(&self, dir: &Path, _lock: &StateLock) -> Result<()> {
        let path = State::path(dir);
        let tmp = dir.join(format!("{STATE_FILE}.tmp"));
        fs::write(&tmp, self.render()).with_context(|| format!("writing {}", tmp.display()))?;
        fs::rename(&tmp, &path).with_context(|| format!("replacing {}", path.display()))
    }

    pub fn render(&self) -> String {
        let mut out = format!("{FORMAT_LINE}\nexe {}\n", self.exe.display());
        if let Some(h) = &self.switch {
            let _ = writeln!(out, "switch {}", render_holder(h));
        }
        if let Some(d) = &self.fence_daemon {
            let _ = writeln!(out, "fence-daemon {}", render_recorded(d));
        }
        if let Some(c) = &self.client {
            let _ = writeln!(out, "client {}", render_recorded(c));
        }
        for n in &self.nodes {
            let power = n
                .holder
                .as_ref()
                .map_or_else(|| "off".to_string(), render_holder);
            let partitioned = if n.partitioned { "yes" } else { "no" };
            let _ = writeln!(
                out,
                "node {} addr={} partitioned={partitioned} {power}",
                n.name, n.addr
            );
        }
        out
    }

    pub fn parse(text: &str) -> Result<State> {
        let mut lines = text.lines().filter(|l| !l.trim().is_empty());
        if lines.next() != Some(FORMAT_LINE) {
            bail!("not a tusk-lab state file (first line is not {FORMAT_LINE:?})");
        }
        let mut exe = None;
        let mut switch = None;
        let mut fence_daemon = None;
        let mut client = None;
        let mut nodes = Vec::new();
        for line in lines {
            let (kind, rest) = line.split_once(' ').unwrap_or((line, ""));
            match kind {
                "exe" => exe = Some(PathBuf::from(rest)),
                "switch" => switch = Some(parse_holder(&fields(rest)?)?),
                "fence-daemon" => fence_daemon = Some(parse_recorded(rest)?),
                "client" => client = Some(parse_recorded(rest)?),
                "node" => {
                    let (name, rest) = rest
                        .split_once(' ')
                        .ok_or_else(|| anyhow!("node line without fields: {line:?}"))?;
                    let f = fields(rest)?;
                    nodes.push(NodeRecord {
                        name: name.to_string(),
                        addr: get(&f, "addr")?.parse().context("addr")?,
                        partitioned: get(&f, "partitioned")? == "yes",
                        holder: if rest.split_whitespace().any(|w| w == "off") {
                            None
                        } else {
                            Some(parse_holder(&f)?)
                        },
                    });
                }
                other => bail!("unknown line kind {other:?}"),
            }
        }
        Ok(State {
            exe: exe.ok_or_else(|| anyhow!("no exe line"))?,
            switch,
            fence_daemon,
            client,
            nodes,
        })
    }
}

fn render_recorded(r: &Recorded) -> String {
    format!("{}:{}", r.pid, r.start)
}

fn parse_recorded(s: &str) -> Result<Recorded> {
    let (pid, start) = s
        .trim()
        .split_once(':')
        .ok_or_else(|| anyhow!("expected PID:START, got {s:?}"))?;
    Ok(Recorded {
        pid: pid.parse().context("pid")?,
        start: start.parse().context("start time")?,
    })
}

fn render_holder(h: &Holder) -> String {
    format!(
        "init={} pidns={} netns={} unshare={}",
        render_recorded(&h.init),
        h.pidns,
        h.netns,
        render_recorded(&h.unshare)
    )
}

fn parse_holder(f: &[(&str, &str)]) -> Result<Holder> {
    Ok(Holder {
        init: parse_recorded(get(f, "init")?)?,
        pidns: get(f, "pidns")?.to_string(),
        netns: get(f, "netns")?.to_string(),
        unshare: parse_recorded(get(f, "unshare")?)?,
    })
}

/// `key=value` words; bare words (like `off`) are skipped.
fn fields(s: &str) -> Result<Vec<(&str, &str)>> {
    Ok(s.split_whitespace()
        .filter_map(|w| w.split_once('='))
        .collect())
}

fn get<'a>(f: &[(&str, &'a str)], key: &str) -> Result<&'a str> {
    f.iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| *v)
        .ok_or_else(|| anyhow!("missing {key}="))
}

/// An exclusive lock on the lab's state; released when dropped.
pub struct StateLock {
    _lock: Flock<File>,
}

impl StateLock {
    /// Waits (with a deadline) for the lock: the fence daemon may be in the
    /// middle of powering a node on, which takes a second or two.
    pub fn acquire(dir: &Path) -> Result<StateLock> {
        let path = dir.join(LOCK_FILE);
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .with_context(|| format!("opening {}", path.display()))?;
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => return Ok(StateLock { _lock: lock }),
                Err((_, Errno::EWOULDBLOCK)) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                Err((_, e)) => {
                    return Err(e).with_context(|| format!("locking {}", path.display()))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> State {
        let holder = |pid| Holder {
            init: Recorded {
                pid,
                start: 1000 + pid as u64,
            },
            pidns: format!("pid:[40265{pid}]"),
            netns: format!("net:[40266{pid}]"),
            unshare: Recorded {
                pid: pid - 1,
                start: 999,
            },
        };
        State {
            exe: PathBuf::from("/tmp/lab/bin/tusk-lab"),
            switch: Some(holder(10)),
            fence_daemon: Some(Recorded {
                pid: 20,
                start: 2020,
            }),
            client: Some(Recorded {
                pid: 25,
                start: 2525,
            }),
            nodes: vec![
                NodeRecord {
                    name: "node1".into(),
                    addr: "10.213.77.11".parse().unwrap(),
                    partitioned: false,
                    holder: Some(holder(31)),
                },
                NodeRecord {
                    name: "node2".into(),
                    addr: "10.213.77.12".parse().unwrap(),
                    partitioned: true,
                    holder: None,
                },
            ],
        }
    }

    #[test]
    fn a_state_survives_render_and_parse() {
        let state = sample();
        assert_eq!(State::parse(&state.render()).unwrap(), state);
    }

    #[test]
    fn a_foreign_file_is_refused() {
        assert!(State::parse("hello\n").is_err());
    }

    #[test]
    fn an_unknown_node_names_the_known_ones() {
        let err = sample().node("node9").unwrap_err().to_string();
        assert!(err.contains("node1, node2"), "{err}");
    }
}
