//! `tusk-bench [AGENT_BINARY] [RUNS]`: what one call of the postgresql agent
//! costs, against a real PostgreSQL 15 instance it starts itself. Prints a
//! table of wall time and CPU time (median and 95th percentile over RUNS
//! calls) and the processes and threads each call creates (counted once
//! under strace). Figures only: nothing here passes or fails.

use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tusk_testkit::{Agent, Instance};

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
    println!(
        "postgresql agent {}, {runs} calls per row\n",
        binary.display()
    );
    println!(
        "| call | wall median | wall p95 | CPU median | CPU p95 | processes forked | threads |"
    );
    println!("|---|---|---|---|---|---|---|");
    row("meta-data", &pg, "meta-data", runs)?;
    row("monitor, not running (probe)", &pg, "monitor", runs)?;
    let started = pg.agent().run("start");
    if started.code != 0 {
        bail!("start failed: {}", started.stderr);
    }
    row("monitor, running", &pg, "monitor", runs)?;
    pg.agent().run("stop");
    Ok(())
}

fn row(label: &str, pg: &Instance, action: &str, runs: usize) -> Result<()> {
    let mut wall = Vec::with_capacity(runs);
    let mut cpu = Vec::with_capacity(runs);
    for _ in 0..runs {
        let (w, c) = timed(pg.agent(), action)?;
        wall.push(w);
        cpu.push(c);
    }
    let (forks, threads) = count_clones(pg.agent(), action)?;
    println!(
        "| {label} | {} | {} | {} | {} | {forks} | {threads} |",
        ms(percentile(&mut wall, 50)),
        ms(percentile(&mut wall, 95)),
        ms(percentile(&mut cpu, 50)),
        ms(percentile(&mut cpu, 95)),
    );
    Ok(())
}

/// Wall time of one call and the CPU time (user + system) of the agent and
/// everything it waited for, from wait4's rusage.
fn timed(agent: Agent, action: &str) -> Result<(Duration, Duration)> {
    let mut cmd = agent.into_command(action);
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let started = Instant::now();
    let child = cmd.spawn().context("running the agent")?;
    let mut status = 0;
    let mut usage: nix::libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 on our own child, with valid pointers to locals.
    let pid = unsafe { nix::libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    let wall = started.elapsed();
    if pid < 0 {
        bail!("wait4: {}", std::io::Error::last_os_error());
    }
    let tv = |t: nix::libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    Ok((wall, tv(usage.ru_utime) + tv(usage.ru_stime)))
}

/// Processes (fork, vfork, clone without CLONE_THREAD) and threads one call
/// creates, from `strace -f`.
fn count_clones(agent: Agent, action: &str) -> Result<(usize, usize)> {
    let trace = std::env::temp_dir().join(format!("tusk-bench-{}.strace", std::process::id()));
    let agent = agent.into_command(action);
    let mut strace = Command::new("strace");
    strace
        .args(["-f", "-qq", "-e", "trace=fork,vfork,clone,clone3", "-o"])
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

fn parse_clones(strace: &str) -> (usize, usize) {
    let calls = strace.lines().filter(|l| {
        ["fork(", "vfork(", "clone(", "clone3("]
            .iter()
            .any(|c| l.contains(c))
            && !l.contains("resumed>")
    });
    let (threads, forks): (Vec<&str>, Vec<&str>) = calls.partition(|l| l.contains("CLONE_THREAD"));
    (forks.len(), threads.len())
}

fn percentile(v: &mut [Duration], p: usize) -> Duration {
    v.sort();
    v[(v.len() - 1) * p / 100]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}
