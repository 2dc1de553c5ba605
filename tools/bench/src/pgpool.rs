//! `tusk-bench pgpool [AGENT_BINARY] [RUNS]`: what the pgpool agent's
//! monitor costs, against a real pgpool-II 4.3 in front of a real
//! PostgreSQL 15 primary and streaming standby (unix sockets only), beside
//! the checks an operator would otherwise run: `pcp_node_count`,
//! `pcp_node_info` (every node) and `psql -c 'SHOW pool_nodes'` through
//! pgpool. Figures only.
//!
//! The monitor runs as Pacemaker runs a recurring one, without
//! `CRM_meta_on_node`: outside a cluster there is no attribute daemon, and
//! in steady state the agent publishes nothing anyway (its attribute only
//! changes with the backends).

use crate::{command_row, row, CALL_DEADLINE};
use anyhow::{bail, Result};
use std::path::{Path, PathBuf};
use std::process::Command;
use tusk_testkit::pgpool::{primary_and_standby, Pgpool};

pub fn bench(mut args: impl Iterator<Item = String>) -> Result<()> {
    let binary = PathBuf::from(
        args.next()
            .unwrap_or_else(|| "target/release/pgpool".into()),
    );
    let runs: usize = args.next().map(|r| r.parse()).transpose()?.unwrap_or(200);
    if !binary.is_file() {
        bail!(
            "{} not found: cargo build --release -p tusk-pgpool",
            binary.display()
        );
    }
    if runs == 0 {
        bail!("RUNS must be at least 1");
    }
    let binary = std::fs::canonicalize(&binary)?;
    let (primary, standby) = primary_and_standby("node2");
    let pool = Pgpool::for_pair(&primary, &standby);
    let agent = || {
        pool.agent(&binary, "tusk-bench-pgpool")
            .param("CRM_meta_interval", "10000")
            .timeout_ms(CALL_DEADLINE.as_millis() as u64)
    };
    let mut notes = Vec::new();
    println!("{runs} timed calls per row, after one untimed warm-up call\n");
    println!("| agent or tool | call | exit | wall median | wall p95 | CPU median | CPU p95 | processes | execs | threads |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    row("tusk pgpool", "meta-data", agent, runs, &mut notes)?;
    row(
        "tusk pgpool",
        "monitor (probe, stopped)",
        agent,
        runs,
        &mut notes,
    )?;
    let started = agent().run("start");
    if started.code != 0 {
        bail!("starting pgpool failed: {}", started.stderr);
    }
    // A client turns the backends from "waiting" to "up", as in production.
    pool.psql("SELECT 1");
    row(
        "tusk pgpool",
        "monitor (2 backends in step)",
        agent,
        runs,
        &mut notes,
    )?;
    let pcp = |program: &str, extra: &[&str]| {
        let mut cmd = pool.pcp_command(program);
        cmd.args(extra);
        cmd
    };
    command_row(
        "pcp_node_count",
        "-w (liveness only)",
        || pcp("pcp_node_count", &[]),
        runs,
        &mut notes,
    )?;
    command_row(
        "pcp_node_info",
        "-w (every node)",
        || pcp("pcp_node_info", &[]),
        runs,
        &mut notes,
    )?;
    command_row(
        "psql",
        "-c 'SHOW pool_nodes' through pgpool",
        || psql(&pool),
        runs,
        &mut notes,
    )?;
    agent().run("stop");
    if !notes.is_empty() {
        println!("\nWhat the calls said (ocf-exit-reason of the warm-up call):");
        for note in notes {
            println!("- {note}");
        }
    }
    Ok(())
}

/// `SHOW pool_nodes` through pgpool with the fixture's password file, as an
/// operator's check script would run it.
fn psql(pool: &Pgpool) -> Command {
    let mut cmd = Command::new(Path::new(tusk_testkit::BINDIR).join("psql"));
    cmd.env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("PGPASSFILE", &pool.pgpass)
        .args(["-X", "-At", "-d", "postgres", "-U", "postgres", "-h"])
        .arg(&pool.socket_dir)
        .arg("-p")
        .arg(pool.port.to_string())
        .args(["-c", "SHOW pool_nodes"]);
    cmd
}
