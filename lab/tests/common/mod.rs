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
    down: Option<DownOnDrop>,
    _serial: Flock<File>,
}

impl Drop for TestLab {
    fn drop(&mut self) {
        if let Some(keep) = std::env::var_os("TUSK_LAB_LOGS") {
            // For reading a passing run's logs afterwards.
            let dir = Path::new(&keep).join(&self.name);
            for node in self.lab.nodes().unwrap_or_default() {
                let _ = fs::create_dir_all(&dir);
                let _ = fs::write(
                    dir.join(format!("{node}.log")),
                    self.lab.logs(&node, 100_000).unwrap_or_default(),
                );
            }
        }
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
            if std::env::var_os("TUSK_LAB_KEEP").is_some() {
                // For a look by hand: the lab stays up until `down`.
                std::mem::forget(self.down.take());
                eprintln!(
                    "[{}] TUSK_LAB_KEEP: the lab stays up; enter it with TUSK_LAB_DIR={} tusk-lab exec node1 bash, end it with tusk-lab down",
                    self.name,
                    self.lab.dir().display()
                );
            }
            // CI shows the end of a failing test's output: say there why.
            eprintln!(
                "[{}] FAILED: {}",
                self.name,
                PANIC.lock().map(|p| p.clone()).unwrap_or_default()
            );
        }
        // Then `down` ends the lab, then _serial lets the next test's lab up.
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

/// `/tmp/tusk-lab-test-NAME`, or `PREFIX-NAME` with `TUSK_LAB_TEST_DIR=PREFIX`
/// (one engineer's labs apart from another's).
pub fn test_dir(name: &str) -> PathBuf {
    let prefix = std::env::var("TUSK_LAB_TEST_DIR").unwrap_or("/tmp/tusk-lab-test".into());
    PathBuf::from(format!("{prefix}-{name}"))
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
        down: Some(lab.down_on_drop()),
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

// ---------------------------------------------------------------------------
// The PostgreSQL promotable clone (issue 4's scenarios).

use tusk_lab::harness::workload::{written_values, Load, Writer, WriterReport};
use tusk_lab::postgres::{self, Promotable};

/// A lab of `nodes` nodes with data replicated by hand and the promotable
/// clone created as `configure` says (starting from every node,
/// sync=available, rewind=auto); returns once one primary has every other
/// instance streaming from it. Returns the lab and the primary.
pub fn up_promotable(
    name: &str,
    nodes: usize,
    configure: impl FnOnce(Promotable) -> Promotable,
) -> (TestLab, String) {
    let test = up(name, nodes);
    let lab = &test.lab;
    let config = configure(Promotable::on(&lab.nodes().unwrap()));
    let started = Instant::now();
    postgres::replicate_by_hand(lab, &config.nodes).expect("initdb and base backups");
    let copied = started.elapsed();
    let primary = postgres::create_promotable(lab, &config, Duration::from_secs(120))
        .expect("the promotable clone with one primary and streaming standbys");
    if config.sync != postgres::SyncMode::Off {
        postgres::wait_synchronous(lab, &primary, Duration::from_secs(60))
            .expect("the primary's commits waiting for a standby");
    }
    eprintln!(
        "[{name}] FIGURE setup: data on {} nodes in {:.1} s, then {primary} primary with {} streaming standbys in {:.1} s",
        config.nodes.len(),
        copied.as_secs_f64(),
        config.nodes.len() - 1,
        (started.elapsed() - copied).as_secs_f64()
    );
    (test, primary)
}

/// The writer, through the primary's floating address, once it has had 10
/// writes acknowledged.
pub fn start_writer(lab: &Lab) -> Writer {
    let netns = lab.switch_netns().unwrap();
    let writer = Writer::start(
        &netns,
        &postgres::primary_conninfo(lab),
        Duration::from_millis(100),
    )
    .expect("starting the writer");
    wait("10 acknowledged writes", Duration::from_secs(30), || {
        writer.report().acknowledged.len() >= 10
    });
    writer
}

/// pgbench through the floating address, so that standbys really lag a
/// little when a fault hits.
pub fn start_load(lab: &Lab) -> Load {
    let netns = lab.switch_netns().unwrap();
    let host = postgres::primary_address(lab).to_string();
    Load::start(
        &netns,
        &["-h", &host, "-U", "postgres", "postgres"],
        2,
        Duration::from_secs(300),
    )
    .expect("pgbench")
}

/// Waits until `count` writes were acknowledged after `fault`; returns the
/// time from the fault to the first of them.
pub fn wait_writes_after(
    writer: &Writer,
    fault: Instant,
    count: usize,
    timeout: Duration,
) -> Duration {
    wait(
        &format!("{count} writes acknowledged after the fault"),
        timeout,
        || {
            writer
                .report()
                .acknowledged
                .iter()
                .filter(|(_, at)| *at > fault)
                .count()
                >= count
        },
    );
    writer.report().first_ack_after(fault).unwrap() - fault
}

/// Prints the scenario's figure: from the fault to the first acknowledged
/// write after it.
pub fn figure(name: &str, what: &str, fault: Instant, report: &WriterReport) {
    match report.first_ack_after(fault) {
        Some(at) => eprintln!(
            "[{name}] FIGURE {what} to the first acknowledged write: {:.1} s ({} acknowledged, {} unconfirmed, {} failed attempts in all)",
            (at - fault).as_secs_f64(),
            report.acknowledged.len(),
            report.unconfirmed.len(),
            report.failures.len()
        ),
        None => eprintln!("[{name}] FIGURE {what}: no write acknowledged after it"),
    }
}

/// Every acknowledged write is in the table as the current primary (behind
/// the floating address) has it.
pub fn assert_nothing_lost(lab: &Lab, report: &WriterReport) {
    let netns = lab.switch_netns().unwrap();
    let present = written_values(&netns, &postgres::primary_conninfo(lab))
        .expect("reading tusk_writer on the primary");
    let lost = report.lost(&present);
    assert!(
        lost.is_empty(),
        "{} acknowledged writes lost: {lost:?}",
        lost.len()
    );
}

/// Waits until a node other than `old` is the one primary, with the
/// floating address; returns it.
pub fn wait_new_primary(lab: &Lab, old: &str, timeout: Duration) -> String {
    let mut found = String::new();
    let mut last = postgres::Roles::default();
    let ok = process::wait_for("a new primary", timeout, || {
        let Ok(roles) = postgres::roles(lab) else {
            return Ok(false);
        };
        last = roles.clone();
        match roles.promoted.as_slice() {
            [p] if p != old && roles.vip == [p.clone()] => {
                found = p.clone();
                Ok(true)
            }
            _ => Ok(false),
        }
    });
    if let Err(e) = ok {
        panic!("{e:#}; last seen: {last:?}");
    }
    found
}

/// SIGKILLs the postmaster of `node`'s instance (its PID from
/// postmaster.pid, in the node's PID namespace).
pub fn kill_postmaster(lab: &Lab, node: &str) {
    let pid = postgres::postmaster_pid(lab, node)
        .unwrap()
        .unwrap_or_else(|| panic!("no postmaster.pid on {node}"));
    sh(lab, node, &["kill", "-KILL", &pid.to_string()]);
}

/// The node's Pacemaker log (where the agent logs too), read from the host.
pub fn pacemaker_log(lab: &Lab, node: &str) -> String {
    let path = tusk_lab::node::NodeDir::new(lab.dir(), node).log("pacemaker/pacemaker.log");
    fs::read_to_string(path).unwrap_or_default()
}

/// Lines of every node's Pacemaker log that contain `needle`.
pub fn log_lines(lab: &Lab, needle: &str) -> Vec<String> {
    lab.nodes()
        .unwrap()
        .iter()
        .flat_map(|n| {
            pacemaker_log(lab, n)
                .lines()
                .filter(|l| l.contains(needle))
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// From then on Pacemaker fences by switching nodes off instead of
/// rebooting them: a lost node stays off until the test boots it
/// (`lab.restart`).
pub fn fence_by_switching_off(lab: &Lab) {
    let node = postgres::observer(lab).unwrap();
    sh(
        lab,
        &node,
        &["pcs", "property", "set", "stonith-action=off"],
    );
}

/// Waits until `node`'s attribute `name` is `value`, as a connected node's
/// Pacemaker sees it; returns how long it took.
pub fn wait_attribute(
    lab: &Lab,
    node: &str,
    name: &str,
    value: &str,
    timeout: Duration,
) -> Duration {
    let mut last = None;
    let started = Instant::now();
    let ok = process::wait_for(&format!("{name}={value} on {node}"), timeout, || {
        let Ok(view) = lab.view(&postgres::observer(lab)?) else {
            return Ok(false);
        };
        last = view.attribute(node, name).map(str::to_string);
        Ok(last.as_deref() == Some(value))
    });
    if let Err(e) = ok {
        panic!("{e:#}; last value: {last:?}");
    }
    started.elapsed()
}

/// Exactly one primary, nothing blocked: what every scenario ends with.
pub fn assert_one_primary_nothing_blocked(lab: &Lab) -> String {
    let view = lab.view(&postgres::observer(lab).unwrap()).unwrap();
    let roles = postgres::roles_in(&view);
    assert_eq!(
        roles.promoted.len(),
        1,
        "not exactly one primary: {roles:?}"
    );
    assert_eq!(
        roles.vip, roles.promoted,
        "the address is not with the primary: {roles:?}"
    );
    let blocked: Vec<&str> = view.blocked().iter().map(|r| r.id.as_str()).collect();
    assert!(blocked.is_empty(), "blocked resources: {blocked:?}");
    roles.promoted[0].clone()
}

// ---------------------------------------------------------------------------
// pgpool in front of the promotable clone (issue 9's scenarios).

use tusk_lab::pgpool::{self, Pool};

/// [`up_promotable`] on every node with the defaults, then pgpool
/// configured as `configure` says (starting from every PostgreSQL node as a
/// backend) and its clone started on every node; returns once every pgpool
/// shows the primary as its primary with every standby attached. Returns
/// the lab and the primary.
pub fn up_pgpool(
    name: &str,
    nodes: usize,
    configure: impl FnOnce(Pool) -> Pool,
) -> (TestLab, String) {
    let (test, primary) = up_promotable(name, nodes, |c| c);
    let lab = &test.lab;
    let all = lab.nodes().unwrap();
    let pool = configure(Pool::on(&all));
    let started = Instant::now();
    pgpool::configure(lab, &pool).expect("pgpool's files on every node");
    pgpool::create_clone(lab, Duration::from_secs(120)).expect("the pgpool clone");
    let clone_up = started.elapsed();
    for node in &all {
        wait_pool_in_step(lab, node, &primary, Duration::from_secs(60));
    }
    eprintln!(
        "[{name}] FIGURE pgpool setup: the clone started on {} nodes in {:.1} s, every pgpool in step with the cluster after {:.1} s",
        all.len(),
        clone_up.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    (test, primary)
}

/// Waits until `node`'s pgpool shows `primary` as its primary and every
/// backend that streams from it attached (as the primary's
/// pg_stat_replication says); returns how long it took.
pub fn wait_pool_in_step(lab: &Lab, node: &str, primary: &str, timeout: Duration) -> Duration {
    let primary_addr = lab.address(primary).unwrap();
    let names = pgpool::names(lab).unwrap();
    let mut last = String::new();
    let started = Instant::now();
    let ok = process::wait_for(
        &format!("{node}'s pgpool in step with {primary} as primary"),
        timeout,
        || {
            let view = match pgpool::pool_nodes(lab, node, Duration::from_secs(3)) {
                Ok(v) => v,
                Err(e) => {
                    last = format!("{e:#}");
                    return Ok(false);
                }
            };
            last = view.summary(&names);
            if !view.has_primary(primary_addr) {
                return Ok(false);
            }
            let streaming = postgres::replication(lab, primary).unwrap_or_default();
            Ok(streaming
                .iter()
                .filter(|r| r.state == "streaming")
                .all(|r| view.is_attached(lab.address(&r.name).unwrap())))
        },
    );
    if let Err(e) = ok {
        panic!("{e:#}; last seen: {last}");
    }
    started.elapsed()
}

/// Waits until `node`'s pgpool shows `primary` as its one primary;
/// returns how long it took.
pub fn wait_pool_primary(lab: &Lab, node: &str, primary: &str, timeout: Duration) -> Duration {
    let addr = lab.address(primary).unwrap();
    let names = pgpool::names(lab).unwrap();
    let mut last = String::new();
    let started = Instant::now();
    let ok = process::wait_for(
        &format!("{node}'s pgpool to show {primary} as primary"),
        timeout,
        || {
            Ok(
                match pgpool::pool_nodes(lab, node, Duration::from_secs(3)) {
                    Ok(view) => {
                        last = view.summary(&names);
                        view.has_primary(addr)
                    }
                    Err(e) => {
                        last = format!("{e:#}");
                        false
                    }
                },
            )
        },
    );
    if let Err(e) = ok {
        panic!("{e:#}; last seen: {last}");
    }
    started.elapsed()
}

/// Waits until `node`'s pgpool shows the backend of `backend` as `attached`
/// (or not); returns how long it took.
pub fn wait_pool_attached(
    lab: &Lab,
    node: &str,
    backend: &str,
    attached: bool,
    timeout: Duration,
) -> Duration {
    let addr = lab.address(backend).unwrap();
    let names = pgpool::names(lab).unwrap();
    let mut last = String::new();
    let started = Instant::now();
    let what = if attached { "attached" } else { "detached" };
    let ok = process::wait_for(
        &format!("{node}'s pgpool to show {backend} {what}"),
        timeout,
        || {
            Ok(
                match pgpool::pool_nodes(lab, node, Duration::from_secs(3)) {
                    Ok(view) => {
                        last = view.summary(&names);
                        view.is_attached(addr) == attached
                    }
                    Err(e) => {
                        last = format!("{e:#}");
                        false
                    }
                },
            )
        },
    );
    if let Err(e) = ok {
        panic!("{e:#}; last seen: {last}");
    }
    started.elapsed()
}

/// The writer through the pgpool of `node`, once it has had 10 writes
/// acknowledged.
pub fn start_pool_writer(lab: &Lab, node: &str) -> Writer {
    let netns = lab.switch_netns().unwrap();
    let writer = Writer::start(
        &netns,
        &pgpool::conninfo(lab, node).unwrap(),
        Duration::from_millis(100),
    )
    .expect("starting the writer");
    wait(
        "10 writes acknowledged through pgpool",
        Duration::from_secs(30),
        || writer.report().acknowledged.len() >= 10,
    );
    writer
}

/// The main PID of every running pgpool of `nodes`.
pub fn pool_pids(lab: &Lab, nodes: &[String]) -> Vec<(String, i32)> {
    nodes
        .iter()
        .map(|n| {
            let pid = pgpool::main_pid(lab, n).unwrap_or_else(|e| panic!("{e:#}"));
            (n.clone(), pid)
        })
        .collect()
}

/// pgpool was never restarted on `before`'s nodes: the same main process
/// runs, and Pacemaker recorded no failure of it anywhere.
pub fn assert_pools_not_restarted(lab: &Lab, before: &[(String, i32)]) {
    assert_eq!(
        pool_pids(
            lab,
            &before.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>()
        ),
        before,
        "a pgpool main process changed: pgpool was restarted"
    );
    let view = lab.view(&postgres::observer(lab).unwrap()).unwrap();
    let failures = view.failures_of(pgpool::RESOURCE);
    assert!(
        failures.is_empty(),
        "pgpool operations failed: {failures:?}"
    );
}

/// Prints what each watched pgpool showed, and when (relative to `zero`).
pub fn print_timelines(name: &str, zero: Instant, watchers: &[(String, pgpool::Watcher)]) {
    for (node, w) in watchers {
        eprintln!("[{name}] SHOW pool_nodes through {node}'s pgpool (time from the fault):");
        for line in w.timeline(zero) {
            eprintln!("[{name}]   {line}");
        }
    }
}

/// The agent's view changes on every node (pgpool's log lines for
/// failovers and the agent's PCP requests), for the report.
pub fn print_pool_logs(name: &str, lab: &Lab) {
    for node in lab.nodes().unwrap() {
        for line in pgpool::log_lines(
            lab,
            &node,
            &[
                "failover done",
                "set new primary node",
                "find_primary_node: primary node is",
                "received promote",
                "received failback",
                "received degenerate",
                "Giving up finding primary",
                "restart children",
                "Restart all children",
            ],
        ) {
            eprintln!("[{name}] {node} pgpool.log: {line}");
        }
        for line in pacemaker_log(lab, &node).lines().filter(|l| {
            l.contains("pgpool")
                && (l.contains("attach node")
                    || l.contains("promote node")
                    || l.contains("detach node")
                    || l.contains("backends:"))
        }) {
            eprintln!("[{name}] {node} agent: {line}");
        }
    }
}

/// Prints when the writer's attempts failed, relative to `fault`, and why
/// (the first line of the first error of each second).
pub fn print_failures(name: &str, fault: Instant, report: &WriterReport) {
    let mut last_second = None;
    for (at, why) in &report.failures {
        let t = at.saturating_duration_since(fault).as_secs_f64();
        let second = t as u64;
        if last_second != Some(second) {
            eprintln!(
                "[{name}]   write failed at +{t:.1} s: {}",
                why.lines().next().unwrap_or_default()
            );
            last_second = Some(second);
        }
    }
}

/// Prints the longest pause of acknowledged writes after `fault`: what a
/// client saw of it, whether its writes failed or hung meanwhile.
pub fn pause_figure(name: &str, what: &str, fault: Instant, report: &WriterReport) {
    let since = |at: Instant| {
        if at >= fault {
            format!("+{:.1}", (at - fault).as_secs_f64())
        } else {
            format!("-{:.1}", (fault - at).as_secs_f64())
        }
    };
    match report.longest_pause_after(fault) {
        Some((from, to)) => eprintln!(
            "[{name}] FIGURE {what}: writes through pgpool paused {:.1} s (no acknowledgement from {} s to {} s after the fault)",
            (to - from).as_secs_f64(),
            since(from),
            since(to)
        ),
        None => eprintln!("[{name}] FIGURE {what}: no write acknowledged after the fault"),
    }
}

/// No watched pgpool ever showed two backends attached as primaries.
pub fn assert_never_two_primaries(watchers: &[(String, pgpool::Watcher)], zero: Instant) {
    for (node, w) in watchers {
        for seen in w.seen() {
            let Some(view) = &seen.view else { continue };
            let primaries = view
                .nodes
                .iter()
                .filter(|n| n.is_attached() && n.role == "primary")
                .count();
            assert!(
                primaries <= 1,
                "{node}'s pgpool showed {primaries} primaries: {:?}",
                w.timeline(zero)
            );
        }
    }
}

/// A client on the primary's own node (its unix socket, so a partition does
/// not cut it off): one INSERT after the other, each recorded once
/// acknowledged, until one fails (the node fenced).
pub struct LocalWriter {
    acknowledged: std::sync::Arc<std::sync::Mutex<Vec<u32>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

pub fn local_writer(lab: &tusk_lab::Lab, node: &str) -> LocalWriter {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let (lab, node) = (lab.clone(), node.to_string());
    let (acks, stopping) = (Arc::clone(&acknowledged), Arc::clone(&stop));
    let thread = std::thread::spawn(move || {
        for v in 1u32.. {
            if stopping.load(Ordering::SeqCst) {
                return;
            }
            let insert = format!("INSERT INTO tusk_local VALUES ({v})");
            if tusk_lab::postgres::sql(&lab, &node, &insert).is_err() {
                return;
            }
            acks.lock().unwrap().push(v);
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    LocalWriter {
        acknowledged,
        stop,
        thread: Some(thread),
    }
}

impl LocalWriter {
    pub fn acknowledged(&self) -> Vec<u32> {
        self.acknowledged.lock().unwrap().clone()
    }

    /// The acknowledged values missing from `node`'s table (the primary
    /// the cut-off one's writes must have reached).
    pub fn lost_on(acknowledged: &[u32], lab: &tusk_lab::Lab, node: &str) -> Vec<u32> {
        let present = tusk_lab::postgres::sql(lab, node, "SELECT v FROM tusk_local").unwrap();
        let present: Vec<&str> = present.lines().collect();
        acknowledged
            .iter()
            .filter(|v| !present.contains(&v.to_string().as_str()))
            .copied()
            .collect()
    }

    pub fn stop(mut self) -> Vec<u32> {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.acknowledged()
    }
}

// ---------------------------------------------------------------------------
// Slony-I with the slon promotable clone (issue 10's scenarios).

use tusk_lab::slony;

/// A lab of `nodes` nodes with PostgreSQL on each (the postgresql agent as
/// a plain clone), the Slony cluster with the writer's table in one set,
/// and the slon promotable clone with the origin's address; returns once
/// node1 is the Promoted origin and every other node's subscription is
/// active. Returns the lab and the origin.
pub fn up_slony(name: &str, nodes: usize) -> (TestLab, String) {
    let test = up(name, nodes);
    let lab = &test.lab;
    let all = lab.nodes().unwrap();
    let started = Instant::now();
    slony::prepare(lab, &all, Duration::from_secs(120))
        .expect("PostgreSQL on every node and the Slony cluster");
    let prepared = started.elapsed();
    slony::create_promotable(lab, &all, Duration::from_secs(120))
        .expect("the slon promotable clone with the origin promoted and every node subscribed");
    eprintln!(
        "[{name}] FIGURE setup: PostgreSQL and the Slony cluster on {} nodes in {:.1} s, then {} the Promoted origin with {} active subscriptions in {:.1} s",
        all.len(),
        prepared.as_secs_f64(),
        all[0],
        all.len() - 1,
        (started.elapsed() - prepared).as_secs_f64()
    );
    (test, all[0].clone())
}

/// The writer through the origin's floating address, once it has had 10
/// writes acknowledged.
pub fn start_origin_writer(lab: &Lab) -> Writer {
    let netns = lab.switch_netns().unwrap();
    let writer = Writer::start(
        &netns,
        &slony::origin_conninfo(lab),
        Duration::from_millis(100),
    )
    .expect("starting the writer");
    wait("10 acknowledged writes", Duration::from_secs(30), || {
        writer.report().acknowledged.len() >= 10
    });
    writer
}

/// Waits until `wanted(promoted)` holds for the one Promoted slon, with
/// the floating address on its node; returns it.
pub fn wait_origin_where(
    lab: &Lab,
    what: &str,
    timeout: Duration,
    wanted: impl Fn(&str) -> bool,
) -> String {
    let mut found = String::new();
    let mut last = slony::Roles::default();
    let ok = process::wait_for(what, timeout, || {
        let Ok(roles) = slony::roles(lab) else {
            return Ok(false);
        };
        last = roles.clone();
        match roles.promoted.as_slice() {
            [p] if wanted(p) && roles.vip == [p.clone()] => {
                found = p.clone();
                Ok(true)
            }
            _ => Ok(false),
        }
    });
    if let Err(e) = ok {
        panic!("{e:#}; last seen: {last:?}");
    }
    found
}

/// Every acknowledged write is in the table as the origin behind the
/// floating address has it.
pub fn assert_nothing_lost_on_origin(lab: &Lab, report: &WriterReport) {
    let netns = lab.switch_netns().unwrap();
    let present = written_values(&netns, &slony::origin_conninfo(lab))
        .expect("reading tusk_writer on the origin");
    let lost = report.lost(&present);
    assert!(
        lost.is_empty(),
        "{} acknowledged writes lost: {lost:?}",
        lost.len()
    );
}

/// Exactly one origin: one Promoted slon, the address with it, nothing
/// blocked, and every node's own catalog (`sl_set.set_origin`) naming that
/// node the set's origin. Returns it.
pub fn assert_one_origin(lab: &Lab) -> String {
    let view = lab.view(&postgres::observer(lab).unwrap()).unwrap();
    let roles = slony::roles_in(&view);
    assert_eq!(roles.promoted.len(), 1, "not exactly one origin: {roles:?}");
    assert_eq!(
        roles.vip, roles.promoted,
        "the address is not with the origin: {roles:?}"
    );
    let blocked: Vec<&str> = view.blocked().iter().map(|r| r.id.as_str()).collect();
    assert!(blocked.is_empty(), "blocked resources: {blocked:?}");
    let origin = roles.promoted[0].clone();
    let id = slony::node_id(&origin).unwrap();
    for node in lab.nodes().unwrap() {
        if !lab.is_running(&node).unwrap_or(false) {
            continue;
        }
        assert_eq!(
            slony::set_origin(lab, &node).unwrap(),
            Some(id),
            "{node}'s catalog disagrees with Pacemaker's Promoted instance on {origin}"
        );
    }
    origin
}

/// Every node but `origin` subscribes to the set (active, as its own
/// catalog says) and has received the writer's last acknowledged value;
/// returns how long that took.
pub fn wait_subscribers_replicating(
    lab: &Lab,
    origin: &str,
    report: &WriterReport,
    timeout: Duration,
) -> Duration {
    let (last, _) = *report.acknowledged.last().expect("writes acknowledged");
    let started = Instant::now();
    for node in lab.nodes().unwrap().iter().filter(|n| *n != origin) {
        let mut seen = String::new();
        let ok = process::wait_for(
            &format!("{node} replicating from {origin} (value {last})"),
            timeout.saturating_sub(started.elapsed()),
            || {
                let subs = slony::subscriptions(lab, node).unwrap_or_default();
                seen = format!("{node}'s sl_subscribe (provider, receiver, active): {subs:?}");
                Ok(slony::subscription_active(lab, node).unwrap_or(false)
                    && slony::has_value(lab, node, last).unwrap_or(false))
            },
        );
        if let Err(e) = ok {
            panic!("{e:#}; last seen: {seen}");
        }
    }
    started.elapsed()
}

/// The slon agent's notable lines (moves, FAILOVER, rejoining, refusals)
/// on every node, for the report.
pub fn print_slon_agent_lines(name: &str, lab: &Lab) {
    const NEEDLES: &[&str] = &[
        "moved from node",
        "moving sets",
        "FAILOVER",
        "failing node",
        "cannot be failed over",
        "rejoining",
        "saved the rows",
        "leftover schema",
        "subscribed to sets",
        "was failed over",
        "slonik",
        "stale",
        "not the origin",
    ];
    for node in lab.nodes().unwrap() {
        for line in pacemaker_log(lab, &node)
            .lines()
            .filter(|l| l.contains("slon(") && NEEDLES.iter().any(|n| l.contains(n)))
        {
            eprintln!("[{name}] {node} agent: {line}");
        }
    }
}

/// Pacemaker's recorded failures of slon and PostgreSQL, for the report.
pub fn print_failures_of(name: &str, lab: &Lab) {
    let view = lab.view(&postgres::observer(lab).unwrap()).unwrap();
    for id in [slony::RESOURCE, postgres::RESOURCE] {
        for f in view.failures_of(id) {
            eprintln!("[{name}] failure recorded: {f:?}");
        }
    }
}

/// No slon operation failed. A monitor that answered degraded (190, 191:
/// slon's watchdog waiting to start a new worker after a restart
/// notification, or lag) is listed by crm_mon among the failed actions,
/// but counts no failure: printed, not a failure.
pub fn assert_no_slon_failure(name: &str, lab: &Lab) {
    let view = lab.view(&postgres::observer(lab).unwrap()).unwrap();
    let (degraded, failed): (Vec<_>, Vec<_>) = view
        .failures_of(slony::RESOURCE)
        .into_iter()
        .partition(|f| matches!(f.exitcode, 190 | 191));
    for f in &degraded {
        eprintln!(
            "[{name}] degraded (not a failure): {} on {}",
            f.op_key, f.node
        );
    }
    assert!(failed.is_empty(), "failed operations: {failed:?}");
}

/// After a FAILOVER (Slony replicates asynchronously): every acknowledged
/// write is on the final origin, or in the failback dump the agent saved
/// on `failed` before it rejoined (rows its origin acknowledged and no
/// subscriber had received when it was lost). Returns the latter, which
/// the scenario prints: the loss window Slony itself leaves, kept by the
/// agent for the operator.
pub fn assert_nothing_lost_but_saved(lab: &Lab, report: &WriterReport, failed: &str) -> Vec<i64> {
    let netns = lab.switch_netns().unwrap();
    let present = written_values(&netns, &slony::origin_conninfo(lab))
        .expect("reading tusk_writer on the origin");
    let missing = report.lost(&present);
    let mut saved = Vec::new();
    for dump in slony::failback_dumps(lab, failed) {
        saved.extend(slony::dumped_values(&dump).unwrap());
    }
    let lost: Vec<i64> = missing
        .iter()
        .copied()
        .filter(|n| !saved.contains(n))
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged writes neither on the origin nor in {failed}'s failback dump: {lost:?}",
        lost.len()
    );
    missing
}

/// Runs `tusk-lab --dir DIR demo ARGS` as `./demo` does, prints what it
/// said, and returns its output; panics when it fails.
pub fn run_demo(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new(EXE)
        .arg("--dir")
        .arg(dir)
        .arg("demo")
        .args(args)
        .env("TUSK_DEMO_COMMAND", "./demo")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("[demo] $ demo {}\n{stdout}{stderr}", args.join(" "));
    assert!(
        out.status.success(),
        "demo {args:?} failed ({}):\n{stdout}{stderr}",
        out.status
    );
    stdout
}

/// The value the demo printed for the figure whose label starts with
/// `label`.
pub fn printed_figure<'a>(output: &'a str, label: &str) -> &'a str {
    let line = output
        .lines()
        .find(|l| l.trim_start().starts_with(label))
        .unwrap_or_else(|| panic!("no figure {label:?}:\n{output}"));
    line.split_once(':').map_or("", |(_, v)| v.trim())
}
