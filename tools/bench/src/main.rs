//! `tusk-bench pgpool [AGENT_BINARY] [RUNS]`: the same for the pgpool agent
//! (see `pgpool.rs`).
//! `tusk-bench slon [AGENT_BINARY] [RUNS]`: the slon agent's monitor beside
//! the init script's check and a psql query of sl_status (see `slon.rs`).
//!
//! `tusk-bench [AGENT_BINARY] [RUNS]`: what one call of a PostgreSQL agent
//! costs, against a real PostgreSQL 15 primary and its streaming standby that
//! it starts itself: tusk's postgresql agent beside resource-agents'
//! `ocf:heartbeat:pgsql` and PAF's `ocf:heartbeat:pgsqlms` where those are
//! installed. Prints wall time and CPU time (median and 95th percentile over
//! RUNS calls) and the processes, execs and threads each call creates
//! (counted once under strace). Figures only: nothing here passes or fails.
//!
//! Every monitor gets the environment Pacemaker gives a promotable clone's
//! recurring monitor (`clone_max`,
//! `promoted_max`/`master_max`, `notify`, `role`, `interval`, ...), the same
//! for all three agents. PAF and the heartbeat agent also ask the cluster
//! (crm_node, crm_attribute, crm_resource, crm_mon), so their promoted and
//! unpromoted monitors only do their real work inside a cluster whose CIB
//! holds a promotable resource of the name they are given:
//! `tools/bench/in-cluster` runs this inside node1 of a one-node lab
//! (`tusk-lab up --nodes 1`, see `lab/`) with such stand-ins. Outside a
//! cluster nothing is faked: the rows show what the agents do and the
//! reasons they give.

use anyhow::{bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};
use tusk_testkit::{wait_until, Agent, Instance, BINDIR};

const HEARTBEAT_PGSQL: &str = "/usr/lib/ocf/resource.d/heartbeat/pgsql";
const PAF_PGSQLMS: &str = "/usr/lib/ocf/resource.d/heartbeat/pgsqlms";

/// The resource names each agent is run under (`OCF_RESOURCE_INSTANCE`).
/// `tools/bench/in-cluster` creates promotable stand-ins of these names, so
/// that `crm_resource --meta` (PAF's notify=true check) and `crm_mon` (the
/// heartbeat agent's "is there a promoted instance" check) see one.
const TUSK_RESOURCE: &str = "tusk-bench";
const HEARTBEAT_RESOURCE: &str = "hb-bench";
const PAF_RESOURCE: &str = "paf-bench";

/// No call may take longer: like Pacemaker at the operation timeout the
/// bench passes (`OCF_RESKEY_CRM_meta_timeout`), it kills a hung call with
/// its process group. Outside a cluster the heartbeat agent retries its
/// crm_attribute calls without end.
pub(crate) const CALL_DEADLINE: Duration = Duration::from_secs(20);

mod pgpool;

mod slon;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1).peekable();
    match args.peek().map(String::as_str) {
        Some("pgpool") => return pgpool::bench(args.skip(1)),
        Some("slon") => return slon::main(args.skip(1)),
        _ => {}
    }
    let binary = PathBuf::from(
        args.next()
            .unwrap_or_else(|| "target/release/postgresql".into()),
    );
    let runs: usize = args.next().map(|r| r.parse()).transpose()?.unwrap_or(200);
    if !binary.is_file() {
        bail!(
            "{} not found: cargo build --release -p tusk-postgresql",
            binary.display()
        );
    }
    if runs == 0 {
        bail!("RUNS must be at least 1");
    }
    let binary = std::fs::canonicalize(&binary)?;
    let cluster = Cluster::detect();
    cluster.describe();

    let primary = Instance::new(&binary);
    // PAF refuses any instance, primary or not, whose settings would not make
    // it a standby of the cluster under this node's name.
    tusk_testkit::append(
        &primary.pgdata.join("postgresql.conf"),
        &primary.replication_settings(&cluster.node),
    );
    let mut notes = Vec::new();
    println!("{runs} timed calls per row, after one untimed warm-up call\n");
    println!("| agent | call | exit | wall median | wall p95 | CPU median | CPU p95 | processes | execs | threads |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let tusk_plain = || primary.agent();
    row("tusk postgresql", "meta-data", tusk_plain, runs, &mut notes)?;
    row(
        "tusk postgresql",
        "monitor (probe, stopped)",
        tusk_plain,
        runs,
        &mut notes,
    )?;

    let pair = Pair::start(&primary, &cluster)?;
    for (role, pg) in pair.roles() {
        let node = pair.tusk_node(role);
        let agent = || {
            let meta = cluster.monitor_env(pg.agent(), TUSK_RESOURCE, role, node);
            tusk(meta, pair.primary)
        };
        row("tusk postgresql", role.call(), agent, runs, &mut notes)?;
    }
    // TUSK_BENCH_PEERS=0: tusk's rows alone, to compare two builds of it.
    let peers = std::env::var("TUSK_BENCH_PEERS").map_or(true, |v| v != "0");
    if peers && Path::new(HEARTBEAT_PGSQL).is_file() {
        let plain = || heartbeat(pair.primary, pair.primary, &cluster);
        row("heartbeat pgsql", "meta-data", plain, runs, &mut notes)?;
        // Its plain mode, as a primitive without replication: the figure
        // earlier measurements (and the issue) quote.
        let primitive = || plain().param("rep_mode", "none");
        row(
            "heartbeat pgsql",
            "monitor, primary (rep_mode=none, no clone)",
            primitive,
            runs,
            &mut notes,
        )?;
        for (role, pg) in pair.roles() {
            let agent = || {
                cluster.monitor_env(
                    heartbeat(pg, pair.primary, &cluster),
                    HEARTBEAT_RESOURCE,
                    role,
                    &cluster.node,
                )
            };
            row("heartbeat pgsql", role.call(), agent, runs, &mut notes)?;
        }
    }
    if peers && Path::new(PAF_PGSQLMS).is_file() {
        let plain = || paf(pair.primary);
        row("PAF pgsqlms", "meta-data", plain, runs, &mut notes)?;
        for (role, pg) in pair.roles() {
            let agent = || cluster.monitor_env(paf(pg), PAF_RESOURCE, role, &cluster.node);
            row("PAF pgsqlms", role.call(), agent, runs, &mut notes)?;
        }
    }
    pair.stop();
    if !notes.is_empty() {
        println!("\nWhat the agents said (ocf-exit-reason of the warm-up call):");
        for note in notes {
            println!("- {note}");
        }
    }
    Ok(())
}

/// What the bench found about the cluster it runs in, if any.
struct Cluster {
    /// `crm_node -n` inside a cluster, the host name outside one: PAF wants
    /// it as the standby's `application_name`.
    node: String,
    in_cluster: bool,
    /// Pacemaker passes it to every action; PAF refuses to run without it.
    feature_set: Option<String>,
    stand_ins: bool,
}

impl Cluster {
    fn detect() -> Cluster {
        let crm_node = answer("crm_node", &["-n"]);
        let feature_set = answer("pacemakerd", &["--features"]).and_then(|f| {
            f.split_whitespace()
                .skip_while(|w| *w != "Supporting")
                .nth(1)
                .map(|v| v.trim_start_matches('v').trim_end_matches(':').to_string())
        });
        let stand_ins = crm_node.is_some()
            && [TUSK_RESOURCE, HEARTBEAT_RESOURCE, PAF_RESOURCE]
                .iter()
                .all(|rsc| {
                    answer(
                        "crm_resource",
                        &["--resource", rsc, "--meta", "--get-parameter", "notify"],
                    )
                    .as_deref()
                        == Some("true")
                });
        let in_cluster = crm_node.is_some();
        let node = crm_node.unwrap_or_else(|| {
            nix::sys::utsname::uname()
                .map(|u| u.nodename().to_string_lossy().into_owned())
                .unwrap_or_else(|_| "localhost".into())
        });
        Cluster {
            node,
            in_cluster,
            feature_set,
            stand_ins,
        }
    }

    fn describe(&self) {
        match (self.in_cluster, self.stand_ins) {
            (true, true) => println!(
                "In a cluster as node {}, with promotable stand-ins {TUSK_RESOURCE}, \
                 {HEARTBEAT_RESOURCE}, {PAF_RESOURCE} (notify=true) in its CIB.",
                self.node
            ),
            (true, false) => println!(
                "In a cluster as node {}, but without promotable stand-ins named \
                 {TUSK_RESOURCE}, {HEARTBEAT_RESOURCE}, {PAF_RESOURCE}: PAF will refuse \
                 (notify=true is read from the CIB). tools/bench/in-cluster sets them up.",
                self.node
            ),
            (false, _) => println!(
                "Not in a cluster (crm_node -n fails): PAF's and the heartbeat agent's \
                 promotable monitors need one and their rows show what they do without; \
                 tools/bench/in-cluster runs this inside a one-node lab cluster."
            ),
        }
        println!(
            "Pacemaker feature set: {}\n",
            self.feature_set.as_deref().unwrap_or("unknown")
        );
    }

    /// The environment Pacemaker 2.1 gives a recurring monitor of one
    /// instance of a promotable clone with notify=true, two instances, one
    /// promoted (both the 2.1 and the 1.x meta names, as Pacemaker passes
    /// both), monitors every 10 s promoted and 11 s unpromoted.
    fn monitor_env(&self, agent: Agent, resource: &str, role: Role, node: &str) -> Agent {
        let (role_name, interval) = match role {
            Role::Promoted => ("Promoted", "10000"),
            Role::Unpromoted => ("Unpromoted", "11000"),
        };
        let mut agent = agent
            .env("OCF_RESOURCE_INSTANCE", resource)
            .env("OCF_RA_VERSION_MAJOR", "1")
            .env("OCF_RA_VERSION_MINOR", "1")
            .param("CRM_meta_clone", "0")
            .param("CRM_meta_clone_max", "2")
            .param("CRM_meta_clone_node_max", "1")
            .param("CRM_meta_promoted_max", "1")
            .param("CRM_meta_promoted_node_max", "1")
            .param("CRM_meta_master_max", "1")
            .param("CRM_meta_master_node_max", "1")
            .param("CRM_meta_globally_unique", "false")
            .param("CRM_meta_notify", "true")
            .param("CRM_meta_role", role_name)
            .param("CRM_meta_interval", interval)
            .param("CRM_meta_on_node", node)
            .timeout_ms(CALL_DEADLINE.as_millis() as u64);
        if let Some(set) = &self.feature_set {
            agent = agent.param("crm_feature_set", set);
        }
        agent
    }
}

#[derive(Clone, Copy)]
enum Role {
    Promoted,
    Unpromoted,
}

impl Role {
    fn call(self) -> &'static str {
        match self {
            Role::Promoted => "monitor, primary (promoted)",
            Role::Unpromoted => "monitor, standby (unpromoted)",
        }
    }
}

/// tusk's agent as an instance of a promotable clone whose standbys stream
/// from `primary` (by its socket directory).
fn tusk(agent: Agent, primary: &Instance) -> Agent {
    agent
        .env("OCF_RESOURCE_INSTANCE", TUSK_RESOURCE)
        .param("CRM_meta_promoted_max", "1")
        .param("primary_host", &primary.socketdir)
        .param("repl_user", "postgres")
}

/// The node name tusk's standby runs under. tusk names a standby after its
/// node (`application_name`) and the primary publishes a promotion score per
/// standby; under the primary's own name the standby's score would
/// overwrite the primary's. PAF insists on the node's real name
/// (`crm_node -n`) in every instance's configuration file, and gets it.
const TUSK_STANDBY_NODE: &str = "node2";

/// A running primary and its streaming standby, both started the way tusk's
/// agent runs them in a promotable clone: every instance starts as a
/// standby, the primary is made by promote, the standby is a pg_basebackup.
struct Pair<'a> {
    primary: &'a Instance,
    standby: Instance,
    node: String,
}

impl<'a> Pair<'a> {
    fn start(primary: &'a Instance, cluster: &Cluster) -> Result<Pair<'a>> {
        let as_primary = || tusk(primary.agent(), primary).param("CRM_meta_on_node", &cluster.node);
        for action in ["start", "promote"] {
            let done = as_primary().run(action);
            if done.code != 0 {
                bail!("{action} of the primary failed: {}", done.stderr);
            }
        }
        let standby = primary.standby(&cluster.node);
        let started = tusk(standby.agent(), primary)
            .param("CRM_meta_on_node", TUSK_STANDBY_NODE)
            .run("start");
        if started.code != 0 {
            bail!("starting the standby failed: {}", started.stderr);
        }
        let streaming = wait_until(Duration::from_secs(30), || {
            primary.replication_state(TUSK_STANDBY_NODE).as_deref() == Some("streaming")
        });
        if !streaming {
            bail!(
                "the standby did not stream from the primary within 30 s; see {}",
                standby.logfile.display()
            );
        }
        for pg in [primary, &standby] {
            // The heartbeat agent's work directory; on PostgreSQL 12+ its
            // validation includes `recovery.conf` from there into
            // postgresql.conf, which PAF's `postgres -C` then reads.
            let tmpdir = heartbeat_tmpdir(pg);
            std::fs::create_dir_all(&tmpdir)?;
            let owner = tusk_testkit::postgres_user();
            nix::unistd::chown(&tmpdir, Some(owner.uid), Some(owner.gid))?;
            pg.write_owned(&tmpdir.join("recovery.conf"), "");
        }
        Ok(Pair {
            primary,
            standby,
            node: cluster.node.clone(),
        })
    }

    fn roles(&self) -> [(Role, &Instance); 2] {
        [
            (Role::Promoted, self.primary),
            (Role::Unpromoted, &self.standby),
        ]
    }

    fn tusk_node(&self, role: Role) -> &str {
        match role {
            Role::Promoted => &self.node,
            Role::Unpromoted => TUSK_STANDBY_NODE,
        }
    }

    fn stop(self) {
        tusk(self.standby.agent(), self.primary).run("stop");
        tusk(self.primary.agent(), self.primary).run("stop");
    }
}

fn heartbeat_tmpdir(pg: &Instance) -> PathBuf {
    pg.root().join("heartbeat-tmp")
}

/// `ocf:heartbeat:pgsql` in its replication mode (rep_mode=async), the only
/// one in which it runs as a promotable clone. node_list holds this node
/// only: the one-node cluster has no other, so a primary's monitor sets no
/// attributes for its standbys (a two-node cluster adds crm_attribute calls
/// per standby).
fn heartbeat(pg: &Instance, primary: &Instance, cluster: &Cluster) -> Agent {
    Agent::new(HEARTBEAT_PGSQL)
        .param("pgctl", format!("{BINDIR}/pg_ctl"))
        .param("psql", format!("{BINDIR}/psql"))
        .param("pgdata", &pg.pgdata)
        .param("socketdir", &pg.socketdir)
        .param("pgport", "5432")
        .param("pgdba", "postgres")
        .param("rep_mode", "async")
        .param("node_list", &cluster.node)
        .param("master_ip", &primary.socketdir)
        .param("tmpdir", heartbeat_tmpdir(pg))
}

fn paf(pg: &Instance) -> Agent {
    Agent::new(PAF_PGSQLMS)
        .param("bindir", BINDIR)
        .param("pgdata", &pg.pgdata)
        .param("pghost", &pg.socketdir)
        .param("pgport", "5432")
        .param("system_user", "postgres")
}

fn row(
    label: &str,
    call: &str,
    agent: impl Fn() -> Agent,
    runs: usize,
    notes: &mut Vec<String>,
) -> Result<()> {
    let action = call
        .split([' ', ','])
        .next()
        .expect("a call names its action");
    command_row(label, call, || agent().into_command(action), runs, notes)
}

/// A row for any command: an agent's call, or the peer tool an operator
/// would otherwise run.
fn command_row(
    label: &str,
    call: &str,
    command: impl Fn() -> Command,
    runs: usize,
    notes: &mut Vec<String>,
) -> Result<()> {
    // Untimed: whatever an agent does once (PAF publishing its own score,
    // the heartbeat agent adding its include line) is not steady state.
    let warm_up = warm_up(command())?;
    if warm_up.timed_out {
        println!("| {label} | {call} | killed after {CALL_DEADLINE:?} | | | | | | | |");
        notes.push(format!(
            "{label} {call}: killed after {CALL_DEADLINE:?}, not measured{}",
            warm_up
                .reason
                .map(|r| format!(" (said: {r})"))
                .unwrap_or_default()
        ));
        return Ok(());
    }
    if warm_up.reason.is_some() || ![0, 7, 8].contains(&warm_up.code) {
        notes.push(format!(
            "{label} {call}: exit {}: {}",
            warm_up.code,
            warm_up.reason.unwrap_or_default()
        ));
    }
    let mut wall = Vec::with_capacity(runs);
    let mut cpu = Vec::with_capacity(runs);
    let mut exit = 0;
    for _ in 0..runs {
        let one = measure(command(), Stdio::null(), Stdio::null())?;
        if one.timed_out {
            bail!("{label} {call}: a call was killed after {CALL_DEADLINE:?}");
        }
        wall.push(one.wall);
        cpu.push(one.cpu);
        exit = one.code;
    }
    let clones = count_clones(command(), &format!("{label} {call}"))?;
    println!(
        "| {label} | {call} | {exit} | {} | {} | {} | {} | {} | {} | {} |",
        ms(percentile(&mut wall, 50)),
        ms(percentile(&mut wall, 95)),
        ms(percentile(&mut cpu, 50)),
        ms(percentile(&mut cpu, 95)),
        clones.processes,
        clones.execs,
        clones.threads,
    );
    Ok(())
}

struct WarmUp {
    code: i32,
    timed_out: bool,
    /// The `ocf-exit-reason:` line, for the operator.
    reason: Option<String>,
}

fn warm_up(cmd: Command) -> Result<WarmUp> {
    let path = std::env::temp_dir().join(format!("tusk-bench-{}.err", std::process::id()));
    let stderr = std::fs::File::create(&path)?;
    let measured = measure(cmd, Stdio::null(), Stdio::from(stderr));
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let _ = std::fs::remove_file(&path);
    let measured = measured?;
    Ok(WarmUp {
        code: measured.code,
        timed_out: measured.timed_out,
        reason: text
            .lines()
            .find_map(|l| l.strip_prefix("ocf-exit-reason:"))
            .map(|r| r.trim().to_string()),
    })
}

struct Measured {
    wall: Duration,
    /// User + system time of the process and every child it waited for
    /// (wait4's rusage).
    cpu: Duration,
    /// -1 when it was killed.
    code: i32,
    timed_out: bool,
}

/// Runs one command to its end, in its own process group so that a call
/// that outlives `CALL_DEADLINE` is killed with everything it started.
fn measure(mut cmd: Command, stdout: Stdio, stderr: Stdio) -> Result<Measured> {
    cmd.stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .process_group(0);
    let started = Instant::now();
    let child = cmd.spawn().context("running the agent")?;
    let pid = child.id() as i32;
    let (finished, watch) = mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        let expired = watch.recv_timeout(CALL_DEADLINE) == Err(RecvTimeoutError::Timeout);
        if expired {
            // The child is not reaped until wait4 returns, so its PID (and
            // process group) cannot have been reused.
            let _ = kill(Pid::from_raw(-pid), Signal::SIGKILL);
        }
        expired
    });
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to overwrite.
    let mut usage: nix::libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 on our own child, with valid pointers to locals.
    let waited = unsafe { nix::libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = started.elapsed();
    let _ = finished.send(());
    let expired = watchdog.join().expect("the watchdog does not panic");
    if waited < 0 {
        bail!("wait4: {}", std::io::Error::last_os_error());
    }
    let tv = |t: nix::libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    let code = if nix::libc::WIFEXITED(status) {
        nix::libc::WEXITSTATUS(status)
    } else {
        -1
    };
    Ok(Measured {
        wall,
        cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
        code,
        timed_out: expired,
    })
}

/// The trimmed output of a short query of the cluster, if it succeeds and
/// says something. It has a deadline: outside a cluster some Pacemaker tools
/// wait for a daemon that is not there.
fn answer(program: &str, args: &[&str]) -> Option<String> {
    let path = std::env::temp_dir().join(format!("tusk-bench-{}.out", std::process::id()));
    let file = std::fs::File::create(&path).ok()?;
    let mut cmd = Command::new(program);
    cmd.args(args);
    let measured = measure(cmd, Stdio::from(file), Stdio::null());
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let _ = std::fs::remove_file(&path);
    let text = text.trim();
    (measured.ok()?.code == 0 && !text.is_empty()).then(|| text.to_string())
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Clones {
    processes: usize,
    execs: usize,
    threads: usize,
}

/// What one call creates, from `strace -f`. With `TUSK_BENCH_TRACES` set
/// to a directory, the trace (with the execs' arguments) is kept there.
fn count_clones(agent: Command, name: &str) -> Result<Clones> {
    let keep = std::env::var_os("TUSK_BENCH_TRACES").map(PathBuf::from);
    let trace = match &keep {
        Some(dir) => dir.join(format!("{}.strace", file_name(name))),
        None => std::env::temp_dir().join(format!("tusk-bench-{}.strace", std::process::id())),
    };
    let mut strace = Command::new("strace");
    strace
        .args([
            "-f",
            "-qq",
            "-s",
            "256",
            "-e",
            "trace=fork,vfork,clone,clone3,execve",
            "-o",
        ])
        .arg(&trace)
        .arg(agent.get_program())
        .args(agent.get_args())
        .env_clear()
        .envs(agent.get_envs().filter_map(|(k, v)| Some((k, v?))));
    let traced = measure(strace, Stdio::null(), Stdio::null())
        .context("running strace (apt-get install strace)")?;
    if traced.timed_out {
        bail!("{name} under strace: killed after {CALL_DEADLINE:?}");
    }
    let text = std::fs::read_to_string(&trace).unwrap_or_default();
    if keep.is_none() {
        let _ = std::fs::remove_file(&trace);
    }
    Ok(parse_clones(&text))
}

/// "PAF pgsqlms monitor, primary (promoted)" -> "PAF-pgsqlms-monitor-primary-promoted"
fn file_name(name: &str) -> String {
    name.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join("-")
}

/// Processes are forks and clones without CLONE_THREAD; execs leave out the
/// agent's own first exec.
fn parse_clones(strace: &str) -> Clones {
    let calls = || strace.lines().filter(|l| !l.contains("resumed>"));
    let forks = calls().filter(|l| {
        ["fork(", "vfork(", "clone(", "clone3("]
            .iter()
            .any(|c| l.contains(c))
    });
    let (threads, processes): (Vec<&str>, Vec<&str>) =
        forks.partition(|l| l.contains("CLONE_THREAD"));
    let execs = calls()
        .filter(|l| l.contains("execve(") && !l.contains("= -1"))
        .count();
    Clones {
        processes: processes.len(),
        execs: execs.saturating_sub(1),
        threads: threads.len(),
    }
}

fn percentile(v: &mut [Duration], p: usize) -> Duration {
    v.sort();
    v[(v.len() - 1) * p / 100]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strace_lines_are_counted_by_kind() {
        let trace = "\
100 execve(\"/usr/lib/ocf/resource.d/tusk/postgresql\", [...]) = 0
100 clone3({flags=CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD, ...}, 88) = 101
100 clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|SIGCHLD) = 102
102 execve(\"/bin/psql\", [...]) = -1 ENOENT (No such file or directory)
102 execve(\"/usr/bin/psql\", [...]) = 0
100 vfork( <unfinished ...>
100 <... vfork resumed>) = 103
";
        assert_eq!(
            parse_clones(trace),
            Clones {
                processes: 2,
                execs: 1,
                threads: 1
            }
        );
    }
}
