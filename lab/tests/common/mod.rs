//! Shared by the lab's tests. Each test brings up its own lab in its own
//! directory, named after the test, so that a lab left by a killed run is
//! found and ended by the next run. Labs from different test binaries run one
//! at a time (`tusk_lab::wait_turn`).
#![allow(dead_code)] // not every test binary uses every helper

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::Flock;
use tusk_lab::process::{self, Recorded};
use tusk_lab::state::Holder;
use tusk_lab::{DownOnDrop, Lab, LabConfig};

pub const EXE: &str = env!("CARGO_BIN_EXE_tusk-lab");

/// A lab for one test: ended when dropped, with every node's logs printed
/// first if the test is failing.
pub struct TestLab {
    pub lab: Lab,
    pub name: String,
    _down: DownOnDrop,
    _serial: Flock<File>,
}

impl Drop for TestLab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("[{}] FAILED; the lab as it was:", self.name);
            if let Ok(status) = self.lab.status() {
                eprintln!("{status}");
            }
            for node in self.lab.nodes().unwrap_or_default() {
                let logs = self.lab.logs(&node, 400).unwrap_or_default();
                eprintln!("{}", notable(&logs, 40));
            }
            eprintln!(
                "{}",
                process::tail(&self.lab.dir().join("fence-daemon.log"), 30).unwrap_or_default()
            );
            // CI shows the end of a failing test's output: say there why.
            eprintln!(
                "[{}] FAILED: {}",
                self.name,
                PANIC.lock().map(|p| p.clone()).unwrap_or_default()
            );
        }
        // Then _down ends the lab, then _serial lets the next test's lab up.
    }
}

/// The message of the last panic in this test binary, kept to be repeated
/// after the logs.
static PANIC: std::sync::Mutex<String> = std::sync::Mutex::new(String::new());

fn keep_panic_messages() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if let Ok(mut last) = PANIC.lock() {
                *last = info.to_string();
            }
            default(info);
        }));
    });
}

/// Of each log in `logs` (sections headed `=====`), the section headers and
/// the last `lines` lines that matter to a reader: the cluster stack's
/// notices, warnings and errors, and everything of the small logs.
fn notable(logs: &str, lines: usize) -> String {
    let mut out = String::new();
    let mut section: Vec<&str> = Vec::new();
    let flush = |section: &mut Vec<&str>, out: &mut String| {
        let skip = section.len().saturating_sub(lines);
        for line in section.drain(..).skip(skip) {
            *out += line;
            out.push('\n');
        }
    };
    for line in logs.lines() {
        if line.starts_with("=====") {
            flush(&mut section, &mut out);
            out += line;
            out.push('\n');
        } else if !(line.contains(" info ")
            || line.contains(") info:")
            || line.contains(") debug:"))
        {
            section.push(line);
        }
    }
    flush(&mut section, &mut out);
    out
}

pub fn test_dir(name: &str) -> PathBuf {
    PathBuf::from(format!("/tmp/tusk-lab-test-{name}"))
}

pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the lab tests need root (namespaces, mounts, veths)"
    );
}

/// Brings up a lab of `nodes` nodes for the test `name` and prints how long
/// it took.
pub fn up(name: &str, nodes: usize) -> TestLab {
    require_root();
    keep_panic_messages();
    let serial = tusk_lab::wait_turn().expect("waiting for our turn to run a lab");
    let dir = test_dir(name);
    tusk_lab::down(&dir).expect("ending a lab left by an earlier run");
    let started = Instant::now();
    let lab = Lab::up(&LabConfig::new(&dir).nodes(nodes).exe(EXE)).expect("lab up");
    eprintln!(
        "[{name}] FIGURE up: {nodes} nodes online with quorum and fence device started in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    TestLab {
        _down: lab.down_on_drop(),
        lab,
        name: name.to_string(),
        _serial: serial,
    }
}

/// The holder (init) of a node that is powered on.
pub fn holder(lab: &Lab, node: &str) -> Holder {
    lab.state()
        .unwrap()
        .node(node)
        .unwrap()
        .holder
        .clone()
        .unwrap_or_else(|| panic!("{node} is off"))
}

/// Runs a command in a node and returns its stdout; panics with its stderr
/// if it fails.
pub fn sh(lab: &Lab, node: &str, args: &[&str]) -> String {
    let output = lab
        .exec(node, args)
        .unwrap_or_else(|e| panic!("{args:?} on {node}: {e:#}"));
    assert!(
        output.status.success(),
        "{args:?} on {node} failed ({}): {}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Waits with a deadline; returns how long it took.
pub fn wait(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    process::wait_for(what, timeout, || Ok(ready())).unwrap_or_else(|e| panic!("{e:#}"));
    started.elapsed()
}

/// Every process in a running node's (or the switch's) PID namespace, as
/// recorded processes. Compared later by PID and start time, not by
/// namespace: the kernel reuses a namespace's inode number once it is gone,
/// so `pid:[4026532400]` may name the next boot's namespace.
pub fn processes_of(holder: &Holder) -> Vec<Recorded> {
    assert!(
        holder.is_running(),
        "init {} is not running",
        holder.init.pid
    );
    let list: Vec<Recorded> = process::all_pids()
        .unwrap()
        .into_iter()
        .filter(|pid| process::namespace(*pid, "pid").as_deref() == Some(holder.pidns.as_str()))
        .filter_map(|pid| Recorded::of(pid).ok())
        .collect();
    assert!(
        list.iter().any(|r| r.pid == holder.init.pid),
        "the init is not among its namespace's processes"
    );
    list
}

/// Those of `processes` still running.
pub fn survivors(processes: &[Recorded]) -> Vec<i32> {
    processes
        .iter()
        .filter(|r| r.is_running())
        .map(|r| r.pid)
        .collect()
}

/// The host's network devices, one line each, without the counters that
/// change by themselves.
pub fn host_links() -> Vec<String> {
    let output = std::process::Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .expect("ip link");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| l.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
        .collect()
}

/// Mount points (anywhere on the host) whose path lies under `dir`.
pub fn host_mounts_under(dir: &Path) -> Vec<String> {
    let dir = dir.to_string_lossy();
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .nth(4)
                .is_some_and(|mp| mp.starts_with(&*dir))
        })
        .map(str::to_string)
        .collect()
}

/// What a client in the switch's network namespace gets when it opens a TCP
/// connection to port 9 (nothing listens there) of `addr`: `ConnectionRefused`
/// means the node answered, so it is reachable.
pub fn probe_from_switch(lab: &Lab, addr: std::net::Ipv4Addr) -> std::io::ErrorKind {
    let lab = lab.clone();
    std::thread::spawn(move || {
        lab.join_switch_network()
            .expect("joining the switch's network namespace");
        let target = std::net::SocketAddr::from((addr, 9));
        match std::net::TcpStream::connect_timeout(&target, Duration::from_secs(1)) {
            Ok(_) => panic!("something listens on {target}"),
            Err(e) => e.kind(),
        }
    })
    .join()
    .expect("probe thread")
}

/// The routes of the switch's network namespace, read by a thread inside it.
pub fn switch_routes(lab: &Lab) -> String {
    let lab = lab.clone();
    std::thread::spawn(move || {
        lab.join_switch_network()
            .expect("joining the switch's network namespace");
        // thread-self: /proc/self/net would show the main thread's namespace.
        fs::read_to_string("/proc/thread-self/net/route").expect("reading the routes")
    })
    .join()
    .expect("route thread")
}
