//! docs/guide.md cannot rot: this test reads it, runs every command block
//! it marks as tested, verbatim, in a three-node lab, on the nodes the
//! block's first line names, in the guide's order, and checks that the
//! cluster it built works: one primary with two streaming standbys and
//! the floating address, every pgpool sending writes to the primary, and
//! the guide's switchover and maintenance moving and bringing back what
//! they say. A command block without a marker fails the test (see the
//! guide's "How this guide is kept true" for the convention).
//!
//! The lab's nodes share the host's /etc and /root: for the guide, each
//! node gets its own /etc/hosts, /etc/postgresql, /etc/pgpool2 (a copy of
//! the host's) and /root, bind-mounted inside that node only, as separate
//! machines have; checked again before every block (a node rebooted by
//! fencing comes back without them).

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::*;
use tusk_lab::pgpool::{PoolNode, PoolView};
use tusk_lab::{postgres, slony, Lab};

const NAME: &str = "guide";
const GUIDE: &str = include_str!("../../docs/guide.md");
const NODES: [&str; 3] = ["node1", "node2", "node3"];

// ---------------------------------------------------------------------------
// The guide's blocks and their markers (pure).

/// What the test does with one command block.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Action {
    /// Runs `instead` (or the block itself when None) on each node, in turn.
    Run {
        nodes: Vec<String>,
        instead: Option<String>,
    },
    Untested(String),
}

/// What the test waits for after a block (`<!-- lab then waits: ... -->`).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Wait {
    AllOnline,
    /// One primary with exactly `standbys` Unpromoted instances, each
    /// streaming from it, the floating address with it.
    Primary {
        node: String,
        standbys: usize,
    },
    /// Every running pgpool sends writes to `primary`, every other
    /// PostgreSQL instance attached as a standby.
    Pgpool {
        primary: String,
    },
    /// The Promoted slon on `node`, the address with it, its catalog
    /// naming it the set's origin, and `subscribers` other nodes whose
    /// subscription is active.
    Origin {
        node: String,
        subscribers: usize,
    },
}

/// The guide's sections each layout's test runs, in order: the streaming
/// layout with pgpool, and the Slony-I layout on hosts prepared the same
/// way (sections 1 to 4).
const STREAMING: &[u32] = &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 13];
const SLONY: &[u32] = &[1, 2, 3, 4, 11];

#[derive(Debug, Clone)]
struct Block {
    /// 1-based line of the opening fence.
    line: usize,
    /// The number of the `## N.` section it is in (0 before the first).
    section: u32,
    first: String,
    script: String,
    action: Action,
    wait: Option<Wait>,
}

const INSTEAD: &str = "<!-- lab instead:";
const WAITS: &str = "<!-- lab then waits:";

/// Every fenced block of `text`: `sh` blocks are commands and must carry a
/// marker, `text` blocks are output or listings; any other fence is an
/// error. Returns every error at once.
fn parse(text: &str, nodes: &[&str]) -> Result<Vec<Block>, Vec<String>> {
    let lines: Vec<&str> = text.lines().collect();
    let mut blocks = Vec::new();
    let mut errors = Vec::new();
    let mut i = 0;
    // The `lab instead` comment waiting for its block.
    let mut instead: Option<(usize, String)> = None;
    let mut section = 0;
    while i < lines.len() {
        let line = lines[i].trim_end();
        let n = i + 1;
        if let Some(heading) = line.strip_prefix("## ") {
            if let Some((number, _)) = heading.split_once(". ") {
                section = number.parse().unwrap_or(section);
            }
        }
        if let Some(rest) = line.strip_prefix(INSTEAD) {
            if instead.is_some() {
                errors.push(format!("line {n}: a second `lab instead` before a block"));
            }
            match rest.strip_suffix("-->").map(str::trim) {
                Some(cmd) if !cmd.is_empty() => instead = Some((n, cmd.to_string())),
                _ => errors.push(format!(
                    "line {n}: `lab instead` without a command or `-->`"
                )),
            }
            i += 1;
            continue;
        }
        if line.starts_with(WAITS) {
            errors.push(format!(
                "line {n}: `lab then waits` must follow a command block's closing fence"
            ));
            i += 1;
            continue;
        }
        if line.starts_with("<!-- lab") || line.starts_with("<!-- untested") {
            errors.push(format!("line {n}: unknown marker {line:?}"));
        }
        let Some(info) = line.strip_prefix("```") else {
            if instead.is_some() && !line.trim().is_empty() {
                let (at, _) = instead.take().unwrap();
                errors.push(format!(
                    "line {at}: `lab instead` not directly followed by a command block"
                ));
            }
            i += 1;
            continue;
        };
        // The block's body, up to the closing fence.
        let start = i + 1;
        let mut end = start;
        while end < lines.len() && !lines[end].trim_end().starts_with("```") {
            end += 1;
        }
        if end == lines.len() {
            errors.push(format!("line {n}: fenced block never closed"));
            break;
        }
        let body = &lines[start..end];
        i = end + 1;
        let wait_line = lines.get(i).map(|l| l.trim_end()).unwrap_or("");
        let wait = match wait_line.strip_prefix(WAITS) {
            Some(rest) => {
                i += 1;
                match rest.strip_suffix("-->").map(str::trim).map(parse_wait) {
                    Some(Ok(w)) => Some(w),
                    Some(Err(e)) => {
                        errors.push(format!("line {}: {e}", end + 2));
                        None
                    }
                    None => {
                        errors.push(format!("line {}: `lab then waits` without `-->`", end + 2));
                        None
                    }
                }
            }
            None => None,
        };
        match info.trim() {
            "text" => {
                if let Some((at, _)) = instead.take() {
                    errors.push(format!("line {at}: `lab instead` before a text block"));
                }
                if wait.is_some() {
                    errors.push(format!("line {n}: `lab then waits` after a text block"));
                }
                continue;
            }
            "sh" => {}
            other => {
                errors.push(format!(
                    "line {n}: a fenced block must be `sh` (commands, marked) or `text` (output), not {other:?}"
                ));
                instead = None;
                continue;
            }
        }
        let first = body.first().map(|l| l.trim()).unwrap_or("");
        let script = body.join("\n") + "\n";
        match marker(first, nodes, instead.take().map(|(_, c)| c)) {
            Ok(action) => {
                if wait.is_some() && matches!(action, Action::Untested(_)) {
                    errors.push(format!("line {n}: an untested block cannot be waited for"));
                }
                blocks.push(Block {
                    line: n,
                    section,
                    first: first.to_string(),
                    script,
                    action,
                    wait,
                })
            }
            Err(e) => errors.push(format!("line {n}: {e} (first line: {first:?})")),
        }
    }
    if let Some((at, _)) = instead {
        errors.push(format!("line {at}: `lab instead` without a block after it"));
    }
    if errors.is_empty() {
        Ok(blocks)
    } else {
        Err(errors)
    }
}

/// A command block's first line: `# WHERE`, `# WHERE (untested: REASON)`
/// or `# WHERE (lab: REASON)` (then `instead` is the command the lab runs).
fn marker(first: &str, nodes: &[&str], instead: Option<String>) -> Result<Action, String> {
    let Some(rest) = first.strip_prefix("# ") else {
        return Err(
            "unmarked: the first line must say where it runs (`# every node`, `# node1`, ...)"
                .into(),
        );
    };
    let (place, note) = match rest.split_once(" (") {
        Some((place, note)) => match note.strip_suffix(')') {
            Some(note) => (place.trim(), Some(note.trim())),
            None => return Err("the note in parentheses must end the line".into()),
        },
        None => (rest.trim(), None),
    };
    let untested = note
        .and_then(|n| n.strip_prefix("untested:"))
        .map(str::trim);
    let lab = note.and_then(|n| n.strip_prefix("lab:")).map(str::trim);
    if note.is_some() && untested.is_none() && lab.is_none() {
        return Err("the note must be `(untested: REASON)` or `(lab: REASON)`".into());
    }
    if let Some(reason) = untested {
        if reason.is_empty() {
            return Err("an untested block must say why".into());
        }
        if instead.is_some() {
            return Err("`lab instead` before an untested block".into());
        }
        return Ok(Action::Untested(reason.to_string()));
    }
    match (lab, &instead) {
        (Some(""), _) => return Err("`(lab: ...)` must say why the lab runs something else".into()),
        (Some(_), None) => {
            return Err("`(lab: ...)` needs a `<!-- lab instead: COMMAND -->` just above".into())
        }
        (None, Some(_)) => {
            return Err("a `lab instead` command above a block the lab runs verbatim".into())
        }
        _ => {}
    }
    let targets: Vec<String> = if place == "every node" {
        nodes.iter().map(|n| n.to_string()).collect()
    } else {
        place.split_whitespace().map(str::to_string).collect()
    };
    if targets.is_empty() {
        return Err("no node named".into());
    }
    if let Some(bad) = targets.iter().find(|t| !nodes.contains(&t.as_str())) {
        return Err(format!(
            "{bad:?} is not a node of the lab (a block for other machines is `(untested: ...)`)"
        ));
    }
    Ok(Action::Run {
        nodes: targets,
        instead,
    })
}

/// `all nodes online`, `primary NODE with N streaming standbys`,
/// `pgpool on every node shows primary NODE`.
fn parse_wait(text: &str) -> Result<Wait, String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    match words.as_slice() {
        ["all", "nodes", "online"] => Ok(Wait::AllOnline),
        ["primary", node, "with", n, "streaming", "standbys"] => Ok(Wait::Primary {
            node: node.to_string(),
            standbys: n.parse().map_err(|_| format!("{n:?} is not a number"))?,
        }),
        ["pgpool", "on", "every", "node", "shows", "primary", node] => Ok(Wait::Pgpool {
            primary: node.to_string(),
        }),
        ["origin", node, "with", n, "subscribers"] => Ok(Wait::Origin {
            node: node.to_string(),
            subscribers: n.parse().map_err(|_| format!("{n:?} is not a number"))?,
        }),
        _ => Err(format!("unknown wait {text:?}")),
    }
}

#[test]
fn every_command_block_of_the_guide_is_marked() {
    let blocks = parse(GUIDE, &NODES).unwrap_or_else(|errors| {
        panic!("docs/guide.md:\n{}", errors.join("\n"));
    });
    let run = blocks
        .iter()
        .filter(|b| matches!(b.action, Action::Run { instead: None, .. }))
        .count();
    let instead = blocks
        .iter()
        .filter(|b| {
            matches!(
                b.action,
                Action::Run {
                    instead: Some(_),
                    ..
                }
            )
        })
        .count();
    let untested = blocks.len() - run - instead;
    eprintln!(
        "[{NAME}] {run} blocks run verbatim, {instead} by an equivalent, {untested} untested"
    );
    // A tested block outside both layouts' sections would never run.
    for b in &blocks {
        if matches!(b.action, Action::Run { .. }) {
            assert!(
                STREAMING.contains(&b.section) || SLONY.contains(&b.section),
                "line {}: section {} is in no layout the test runs",
                b.line,
                b.section
            );
        }
    }
    // The guide's setup, switchover and maintenance are tested, not only
    // described.
    assert!(run >= 12, "only {run} blocks run verbatim");
    for needle in [
        "pcs resource move pg-clone node2 --promoted",
        "pcs node standby node3",
        "pcs cluster cib-push",
        "pcs resource create pgpool",
        "pcs resource move slon-clone node2 --promoted",
        "subscribe set",
    ] {
        assert!(
            blocks.iter().any(|b| b.script.contains(needle)
                && matches!(b.action, Action::Run { instead: None, .. })),
            "no tested block runs {needle:?}"
        );
    }
}

#[test]
fn markers_are_checked() {
    let nodes = ["node1", "node2"];
    let ok = "```sh\n# every node\necho hi\n```\n<!-- lab then waits: all nodes online -->\n\
              <!-- lab instead: true -->\n```sh\n# node2 (lab: why)\napt-get x\n```\n\
              ```sh\n# laptop (untested: not a node)\nrm -rf /\n```\n```text\nout\n```\n";
    let blocks = parse(ok, &nodes).unwrap();
    assert_eq!(
        blocks[0].action,
        Action::Run {
            nodes: vec!["node1".into(), "node2".into()],
            instead: None
        }
    );
    assert_eq!(blocks[0].wait, Some(Wait::AllOnline));
    assert_eq!(
        blocks[1].action,
        Action::Run {
            nodes: vec!["node2".into()],
            instead: Some("true".into())
        }
    );
    assert_eq!(blocks[2].action, Action::Untested("not a node".into()));
    for bad in [
        "```sh\necho unmarked\n```\n",
        "```\n# node1\necho no language\n```\n",
        "```sh\n# node9\necho\n```\n",
        "```sh\n# node1 (lab: why)\necho no instead\n```\n",
        "<!-- lab instead: true -->\n```sh\n# node1\necho verbatim\n```\n",
        "```sh\n# node1 (untested:)\necho\n```\n",
        "```sh\n# node1\necho\n```\n<!-- lab then waits: something -->\n",
        "<!-- lab instead: true -->\n\nprose\n```sh\n# node1 (lab: x)\necho\n```\n",
        "<!-- lab: node1 -->\n```sh\n# node1\necho\n```\n",
    ] {
        assert!(parse(bad, &nodes).is_err(), "accepted: {bad}");
    }
    assert_eq!(
        parse_wait("primary node2 with 1 streaming standbys"),
        Ok(Wait::Primary {
            node: "node2".into(),
            standbys: 1
        })
    );
}

// ---------------------------------------------------------------------------
// The lab run.

/// What a node has of its own for the guide, beside the lab's disks:
/// (host path in the lab directory, path inside the node, is a directory).
fn private_paths(lab: &Lab, node: &str) -> Vec<(PathBuf, &'static str)> {
    let root = lab.dir().join(node).join("guide");
    vec![
        (root.join("hosts"), "/etc/hosts"),
        (root.join("etc-postgresql"), "/etc/postgresql"),
        (root.join("etc-pgpool2"), "/etc/pgpool2"),
        (root.join("root"), "/root"),
    ]
}

/// Creates each node's own copies: /etc/hosts and /etc/pgpool2 as the
/// host has them (the packages' files), /etc/postgresql and /root empty.
fn make_machines(lab: &Lab) {
    for node in NODES {
        for (source, target) in private_paths(lab, node) {
            fs::create_dir_all(source.parent().unwrap()).unwrap();
            match target {
                "/etc/hosts" | "/etc/pgpool2" => {
                    let status = std::process::Command::new("cp")
                        .args(["-a", "--no-target-directory", target])
                        .arg(&source)
                        .status()
                        .unwrap();
                    assert!(status.success(), "cp -a {target} {}", source.display());
                }
                _ => {
                    fs::create_dir_all(&source).unwrap();
                    let mode = if target == "/root" { 0o700 } else { 0o755 };
                    fs::set_permissions(&source, fs::Permissions::from_mode(mode)).unwrap();
                }
            }
        }
    }
}

/// What the guide's commands would change on the host if a node's own
/// copy were missing: every file under the paths the nodes get their own
/// of, with its size and modification time, and the files the guide puts
/// in /root.
fn host_snapshot() -> Vec<String> {
    fn walk(path: &std::path::Path, out: &mut Vec<String>) {
        match fs::symlink_metadata(path) {
            Ok(meta) if meta.is_dir() => {
                out.push(format!(
                    "{} dir {}.{}",
                    path.display(),
                    meta.mtime(),
                    meta.mtime_nsec()
                ));
                let mut entries: Vec<PathBuf> = fs::read_dir(path)
                    .map(|d| d.flatten().map(|e| e.path()).collect())
                    .unwrap_or_default();
                entries.sort();
                for entry in entries {
                    walk(&entry, out);
                }
            }
            Ok(meta) => out.push(format!(
                "{} {} {}.{}",
                path.display(),
                meta.len(),
                meta.mtime(),
                meta.mtime_nsec()
            )),
            Err(_) => out.push(format!("{} absent", path.display())),
        }
    }
    let mut out = Vec::new();
    for path in [
        "/etc/hosts",
        "/etc/pgpool2",
        "/etc/postgresql",
        "/root/.pcppass",
        "/root/.pgpass",
        "/root/tusk.xml",
        "/root/corosync.conf",
        "/root/slony.xml",
    ] {
        walk(std::path::Path::new(path), &mut out);
    }
    out
}

/// Bind-mounts the node's own copies where they are missing (at the first
/// block, and after a reboot): a path is the node's own when the node sees
/// the copy's device and inode there.
fn ensure_machine(lab: &Lab, node: &str) {
    for (source, target) in private_paths(lab, node) {
        let meta = fs::metadata(&source).unwrap();
        let want = format!("{}:{}", meta.dev(), meta.ino());
        let seen = sh(lab, node, &["stat", "-L", "-c", "%d:%i", target]);
        if seen.trim() == want {
            continue;
        }
        let source = source.to_str().unwrap();
        sh(lab, node, &["mount", "--bind", source, target]);
        let seen = sh(lab, node, &["stat", "-L", "-c", "%d:%i", target]);
        assert_eq!(
            seen.trim(),
            want,
            "{node}: {target} is not its own after the bind mount"
        );
    }
}

/// Runs a script in the node with bash -e -o pipefail, from /, and panics
/// with its output when it fails.
fn run_script(lab: &Lab, node: &str, script: &str, what: &str) {
    let mut command = lab.command(node, "bash").unwrap();
    command
        .args(["-e", "-o", "pipefail", "-c", script])
        .current_dir("/");
    let started = Instant::now();
    let out = ocf::command::run(command, &ocf::Deadline::after(Duration::from_secs(180)))
        .unwrap_or_else(|e| panic!("{what} on {node}: {e}"));
    eprintln!(
        "[{NAME}] {what} on {node}: exit {} in {:.1} s\n{}{}",
        out.status,
        started.elapsed().as_secs_f64(),
        indent(&out.stdout),
        indent(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{what} on {node} failed ({}):\n{script}\n{}{}",
        out.status,
        out.stdout,
        out.stderr
    );
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("    | {l}\n")).collect()
}

/// `SHOW pool_nodes` through the pgpool of `node`, asked inside the node
/// with the guide's own client credentials (root's .pgpass there).
fn pool_view(lab: &Lab, node: &str) -> Result<PoolView, String> {
    let addr = lab.address(node).map_err(|e| e.to_string())?.to_string();
    let out = lab
        .exec(
            node,
            &[
                "psql",
                "-X",
                "-A",
                "-F",
                "|",
                "-h",
                &addr,
                "-p",
                "9999",
                "-U",
                "app",
                "-d",
                "app",
                "-w",
                "-c",
                "SHOW pool_nodes",
            ],
        )
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    parse_pool_nodes(&String::from_utf8_lossy(&out.stdout))
}

/// psql's unaligned output of SHOW pool_nodes (a header line, rows, a row
/// count) into a view.
fn parse_pool_nodes(text: &str) -> Result<PoolView, String> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().ok_or("no output")?.split('|').collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .ok_or(format!("no column {name} in {header:?}"))
    };
    let (id, host, status, pg_status, role, pg_role, repl) = (
        col("node_id")?,
        col("hostname")?,
        col("status")?,
        col("pg_status")?,
        col("role")?,
        col("pg_role")?,
        col("replication_state")?,
    );
    let mut view = PoolView::default();
    for line in lines.filter(|l| !l.starts_with('(')) {
        let f: Vec<&str> = line.split('|').collect();
        let get = |i: usize| f.get(i).copied().unwrap_or("").to_string();
        view.nodes.push(PoolNode {
            node_id: get(id).parse().map_err(|_| format!("bad row {line:?}"))?,
            hostname: get(host),
            status: get(status),
            pg_status: get(pg_status),
            role: get(role),
            pg_role: get(pg_role),
            replication_state: get(repl),
        });
    }
    Ok(view)
}

/// The primary, its standbys and the address, as the block's wait says.
fn wait_for_primary(lab: &Lab, node: &str, standbys: usize, timeout: Duration) {
    let mut last = String::new();
    let took = wait(
        &format!("{node} primary with {standbys} streaming standbys"),
        timeout,
        || {
            let Ok(roles) = postgres::roles(lab) else {
                return false;
            };
            last = format!("{roles:?}");
            if roles.promoted != [node.to_string()]
                || roles.vip != [node.to_string()]
                || roles.unpromoted.len() != standbys
            {
                return false;
            }
            let Ok(replicas) = postgres::replication(lab, node) else {
                return false;
            };
            last = format!("{roles:?}, {replicas:?}");
            roles.unpromoted.iter().all(|s| {
                replicas
                    .iter()
                    .any(|r| &r.name == s && r.state == "streaming")
            })
        },
    );
    eprintln!(
        "[{NAME}] {node} primary with {standbys} streaming standbys after {:.1} s ({last})",
        took.as_secs_f64()
    );
}

/// Every node's pgpool has `primary` as its only primary and every other
/// node attached as a standby.
fn wait_for_pgpool(lab: &Lab, primary: &str, timeout: Duration) {
    let primary_addr = lab.address(primary).unwrap();
    let mut last = String::new();
    let took = wait(
        &format!("every pgpool to send writes to {primary}"),
        timeout,
        || {
            NODES.iter().all(|node| match pool_view(lab, node) {
                Ok(view) => {
                    last = format!("{node}: {view:?}");
                    view.has_primary(primary_addr)
                        && view.nodes.len() == NODES.len()
                        && view.nodes.iter().all(|n| {
                            n.is_attached()
                                && (n.hostname == primary_addr.to_string() || n.role == "standby")
                        })
                }
                Err(e) => {
                    last = format!("{node}: {e}");
                    false
                }
            })
        },
    );
    eprintln!(
        "[{NAME}] every pgpool sends writes to {primary} with the standbys attached after {:.1} s",
        took.as_secs_f64()
    );
    let _ = last;
}

/// The slon clone's origin, as the block's wait says.
fn wait_for_origin(lab: &Lab, node: &str, subscribers: usize, timeout: Duration) {
    let id = slony::node_id(node).unwrap();
    let mut last = String::new();
    let took = wait(
        &format!("{node} the origin with {subscribers} active subscriptions"),
        timeout,
        || {
            let Ok(roles) = slony::roles(lab) else {
                return false;
            };
            last = format!("{roles:?}");
            if roles.promoted != [node.to_string()]
                || roles.vip != [node.to_string()]
                || roles.unpromoted.len() != NODES.len() - 1
                || slony::set_origin(lab, node).ok().flatten() != Some(id)
            {
                return false;
            }
            let active: Vec<&str> = NODES
                .iter()
                .copied()
                .filter(|n| *n != node && slony::subscription_active(lab, n).unwrap_or(false))
                .collect();
            last = format!("{roles:?}, active subscriptions on {active:?}");
            active.len() == subscribers
        },
    );
    eprintln!(
        "[{NAME}-slony] {node} the origin with {subscribers} active subscriptions after {:.1} s ({last})",
        took.as_secs_f64()
    );
}

/// Pacemaker's last words when a node learns it was fenced (it came back
/// before the others confirmed the fencing): it stops and stays down.
const STAYS_DOWN: &str = "Shutting down and staying down after fatal error";

/// Waits until every node is online with quorum. A node rebooted by the
/// lab's fence device boots in about a second and may rejoin before the
/// fencing is confirmed; its Pacemaker then learns it was fenced and stays
/// down, as on any machine that boots that fast (the guide says to start
/// it again). The test then does what the lab can do for `pcs cluster
/// start`, which needs systemd: it boots that node again, once, and says so.
fn wait_all_online(lab: &Lab, what: &str) {
    if lab.wait_converged(Duration::from_secs(60)).is_ok() {
        return;
    }
    for node in NODES {
        let log = tusk_lab::node::NodeDir::new(lab.dir(), node).log("pacemaker/pacemaker.log");
        let stayed_down = lab.is_running(node).unwrap_or(false)
            && fs::read_to_string(&log).is_ok_and(|l| l.contains(STAYS_DOWN));
        if stayed_down && !lab.view("node1").is_ok_and(|v| v.is_online(node)) {
            eprintln!(
                "[{NAME}] after {what}: {node} came back before its fencing was confirmed and its \
                 Pacemaker stayed down ({STAYS_DOWN:?}); the lab boots it again, as `pcs cluster \
                 start` on it would start its cluster services"
            );
            lab.power_off(node).unwrap();
            lab.restart(node)
                .unwrap_or_else(|e| panic!("after {what}: booting {node} again: {e:#}"));
        }
    }
    lab.wait_converged(Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("after {what}: {e:#}"));
}

/// Brings up a lab and runs the guide's blocks of `sections` in it, with
/// their waits; checks the host's files were left alone. Returns the lab.
fn run_guide(name: &str, sections: &[u32]) -> TestLab {
    let blocks = parse(GUIDE, &NODES).unwrap_or_else(|errors| {
        panic!("docs/guide.md:\n{}", errors.join("\n"));
    });
    let test = up(name, NODES.len());
    let lab = &test.lab;
    let started = Instant::now();
    let host_before = host_snapshot();
    make_machines(lab);
    for block in blocks.iter().filter(|b| sections.contains(&b.section)) {
        let what = format!("docs/guide.md line {} ({})", block.line, block.first);
        match &block.action {
            Action::Untested(reason) => {
                eprintln!("[{name}] {what}: not run ({reason})");
                continue;
            }
            Action::Run { nodes, instead } => {
                for node in nodes {
                    ensure_machine(lab, node);
                    run_script(
                        lab,
                        node,
                        instead.as_deref().unwrap_or(&block.script),
                        &what,
                    );
                }
            }
        }
        match &block.wait {
            None => {}
            Some(Wait::AllOnline) => wait_all_online(lab, &what),
            Some(Wait::Primary { node, standbys }) => {
                wait_for_primary(lab, node, *standbys, Duration::from_secs(180))
            }
            Some(Wait::Pgpool { primary }) => {
                wait_for_pgpool(lab, primary, Duration::from_secs(120))
            }
            Some(Wait::Origin { node, subscribers }) => {
                wait_for_origin(lab, node, *subscribers, Duration::from_secs(180))
            }
        }
    }
    assert_eq!(
        host_snapshot(),
        host_before,
        "the guide's commands changed the host's files"
    );
    eprintln!(
        "[{name}] FIGURE the guide's commands, lab up to the last block: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    test
}

/// No failed operation of `resources` (a degraded monitor, 190/191, which
/// crm_mon lists without counting a failure, aside).
fn assert_no_failures(lab: &Lab, resources: &[&str]) {
    let view = lab.view("node1").unwrap();
    let failed: Vec<_> = resources
        .iter()
        .flat_map(|r| view.failures_of(r))
        .filter(|f| !matches!(f.exitcode, 190 | 191))
        .collect();
    assert!(
        failed.is_empty(),
        "failed operations after the guide: {failed:?}"
    );
}

#[test]
fn the_guide_builds_a_cluster_that_works() {
    let test = run_guide(NAME, STREAMING);
    let lab = &test.lab;
    // The end state the guide leaves: node2 the primary after the
    // switchover, node1 and node3 streaming from it, every pgpool in step,
    // nothing failed.
    wait_for_primary(lab, "node2", 2, Duration::from_secs(60));
    wait_for_pgpool(lab, "node2", Duration::from_secs(60));
    assert_no_failures(lab, &["pg", "pgpool", "pg-vip"]);
}

#[test]
fn the_guides_slony_layout_works() {
    let test = run_guide("guide-slony", SLONY);
    let lab = &test.lab;
    // After the guide's planned move: node2 the origin, node1 and node3
    // subscribed; a row written on the origin reaches both.
    wait_for_origin(lab, "node2", 2, Duration::from_secs(60));
    slony::sql(lab, "node2", "INSERT INTO accounts VALUES (1, 100)").unwrap();
    for node in ["node1", "node3"] {
        wait(
            &format!("the row on {node}"),
            Duration::from_secs(60),
            || {
                slony::sql(lab, node, "SELECT count(*) FROM accounts WHERE id = 1")
                    .is_ok_and(|c| c.trim() == "1")
            },
        );
    }
    assert_no_failures(lab, &["pg", "slon", "slon-vip"]);
}
