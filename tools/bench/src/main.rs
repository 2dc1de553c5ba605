//! `tusk-bench [AGENT_BINARY] [RUNS]`: what one call of a PostgreSQL agent
//! costs, against a real PostgreSQL 15 instance it starts itself: tusk's
//! postgresql agent beside resource-agents' `ocf:heartbeat:pgsql` and PAF's
//! `ocf:heartbeat:pgsqlms` where those are installed. Prints wall time and
//! CPU time (median and 95th percentile over RUNS calls) and the processes,
//! execs and threads each call creates (counted once under strace). Figures
//! only: nothing here passes or fails.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tusk_testkit::{Agent, Instance, BINDIR};

const HEARTBEAT_PGSQL: &str = "/usr/lib/ocf/resource.d/heartbeat/pgsql";
const PAF_PGSQLMS: &str = "/usr/lib/ocf/resource.d/heartbeat/pgsqlms";

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
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
    let binary = std::fs::canonicalize(&binary)?;
    let pg = Instance::new(&binary);
    println!("{runs} calls per row; the instance runs (started by tusk) for the monitor rows\n");
    println!("| agent | call | exit | wall median | wall p95 | CPU median | CPU p95 | processes | execs | threads |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    row("tusk postgresql", "meta-data", || pg.agent(), runs)?;
    row(
        "tusk postgresql",
        "monitor (probe, stopped)",
        || pg.agent(),
        runs,
    )?;
    let started = pg.agent().run("start");
    if started.code != 0 {
        bail!("start failed: {}", started.stderr);
    }
    row("tusk postgresql", "monitor", || pg.agent(), runs)?;
    if Path::new(HEARTBEAT_PGSQL).is_file() {
        let heartbeat = || {
            Agent::new(HEARTBEAT_PGSQL)
                .param("pgctl", format!("{BINDIR}/pg_ctl"))
                .param("psql", format!("{BINDIR}/psql"))
                .param("pgdata", &pg.pgdata)
                .param("socketdir", &pg.socketdir)
                .param("pgport", "5432")
                .param("pgdba", "postgres")
        };
        row("heartbeat pgsql", "meta-data", heartbeat, runs)?;
        row("heartbeat pgsql", "monitor", heartbeat, runs)?;
    }
    if Path::new(PAF_PGSQLMS).is_file() {
        let paf = || {
            Agent::new(PAF_PGSQLMS)
                .param("bindir", BINDIR)
                .param("pgdata", &pg.pgdata)
                .param("pghost", &pg.socketdir)
                .param("pgport", "5432")
                .param("system_user", "postgres")
        };
        row("PAF pgsqlms", "meta-data", paf, runs)?;
        row("PAF pgsqlms", "monitor", paf, runs)?;
    }
    pg.agent().run("stop");
    Ok(())
}

fn row(label: &str, call: &str, agent: impl Fn() -> Agent, runs: usize) -> Result<()> {
    let action = call
        .split_whitespace()
        .next()
        .expect("a call names its action");
    let mut wall = Vec::with_capacity(runs);
    let mut cpu = Vec::with_capacity(runs);
    let mut exit = 0;
    for _ in 0..runs {
        let (w, c, code) = timed(agent(), action)?;
        wall.push(w);
        cpu.push(c);
        exit = code;
    }
    let clones = count_clones(agent(), action)?;
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

/// Wall time of one call, the CPU time (user + system) of the agent and
/// everything it waited for (from wait4's rusage), and its exit code.
fn timed(agent: Agent, action: &str) -> Result<(Duration, Duration, i32)> {
    let mut cmd = agent.into_command(action);
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let started = Instant::now();
    let child = cmd.spawn().context("running the agent")?;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to overwrite.
    let mut usage: nix::libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 on our own child, with valid pointers to locals.
    let pid = unsafe { nix::libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    let wall = started.elapsed();
    if pid < 0 {
        bail!("wait4: {}", std::io::Error::last_os_error());
    }
    let tv = |t: nix::libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    let code = nix::libc::WEXITSTATUS(status);
    Ok((wall, tv(usage.ru_utime) + tv(usage.ru_stime), code))
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Clones {
    processes: usize,
    execs: usize,
    threads: usize,
}

/// What one call creates, from `strace -f`.
fn count_clones(agent: Agent, action: &str) -> Result<Clones> {
    let trace = std::env::temp_dir().join(format!("tusk-bench-{}.strace", std::process::id()));
    let agent = agent.into_command(action);
    let mut strace = Command::new("strace");
    strace
        .args([
            "-f",
            "-qq",
            "-e",
            "trace=fork,vfork,clone,clone3,execve",
            "-o",
        ])
        .arg(&trace)
        .arg(agent.get_program())
        .args(agent.get_args())
        .env_clear()
        .envs(agent.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    strace
        .status()
        .context("running strace (apt-get install strace)")?;
    let text = std::fs::read_to_string(&trace).unwrap_or_default();
    let _ = std::fs::remove_file(&trace);
    Ok(parse_clones(&text))
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
