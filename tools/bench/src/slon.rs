//! `tusk-bench slon [AGENT_BINARY] [RUNS]`: what the slon agent's monitor
//! costs against a real two-node Slony-I 2.2 cluster (testkit), beside
//! what an operator would otherwise run: Debian's init script's check
//! (`pidofproc -p PIDFILE /usr/bin/slon`, which knows nothing of the
//! cluster or the lock) and a psql query of `sl_status` on the origin.
//! The peers run through a two-line `/bin/sh` script (the init script is
//! one; psql is `exec`ed), so their rows count that shell too.

use super::row;
use anyhow::{bail, Result};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use tusk_testkit::slony::SlonyCluster;
use tusk_testkit::Agent;

pub fn main(mut args: impl Iterator<Item = String>) -> Result<()> {
    let binary = PathBuf::from(args.next().unwrap_or_else(|| "target/release/slon".into()));
    let runs: usize = args.next().map(|r| r.parse()).transpose()?.unwrap_or(200);
    if !binary.is_file() {
        bail!(
            "{} not found: cargo build --release -p tusk-slon",
            binary.display()
        );
    }
    if runs == 0 {
        bail!("RUNS must be at least 1");
    }
    let binary = std::fs::canonicalize(&binary)?;
    let cluster = SlonyCluster::new(2);
    let agent = |node: u32| -> Agent {
        let root = cluster.root();
        Agent::new(&binary)
            .env("OCF_RESOURCE_INSTANCE", &format!("tusk-bench-slon-{node}"))
            .env("OCF_RESKEY_CRM_meta_interval", "10000")
            .env("OCF_RESKEY_CRM_meta_timeout", "20000")
            .param("cluster_name", cluster.name().as_str())
            .param("conninfo", cluster.node(node).conninfo())
            .param("pidfile", root.join(format!("agent-{node}.pid")))
            .param("logfile", root.join(format!("agent-{node}.log")))
            .param("options", "-s 500 -t 1000")
    };
    let mut notes = Vec::new();
    println!("{runs} timed calls per row, after one untimed warm-up call\n");
    println!("| agent | call | exit | wall median | wall p95 | CPU median | CPU p95 | processes | execs | threads |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    row("tusk slon", "meta-data", || agent(1), runs, &mut notes)?;
    let probe = || agent(2).env("OCF_RESKEY_CRM_meta_interval", "0");
    row(
        "tusk slon",
        "monitor (probe, stopped)",
        probe,
        runs,
        &mut notes,
    )?;
    for node in [1, 2] {
        let out = agent(node).run("start");
        if out.code != 0 {
            bail!("starting slon for node {node}: {}", out.stderr);
        }
    }
    cluster.insert_rows(1, 1..11);
    cluster.wait_rows(
        2,
        1..11,
        ocf::Deadline::after(std::time::Duration::from_secs(60)),
    )?;
    row(
        "tusk slon",
        "monitor, origin (node 1)",
        || agent(1),
        runs,
        &mut notes,
    )?;
    row(
        "tusk slon",
        "monitor, subscriber (node 2, lag checked)",
        || agent(2),
        runs,
        &mut notes,
    )?;
    let pid_file = cluster.root().join("agent-2.pid");
    let init = script(
        cluster.root(),
        "pidofproc",
        &format!(
            ". /lib/lsb/init-functions\npidofproc -p {} /usr/bin/slon >/dev/null\n",
            sh_quote(&pid_file)
        ),
    )?;
    row(
        "init script",
        "status (pidofproc -p PIDFILE /usr/bin/slon)",
        || Agent::new(&init),
        runs,
        &mut notes,
    )?;
    let sl_status = script(
        cluster.root(),
        "sl_status",
        &format!(
            "exec /usr/bin/psql -X -At -h {} -U postgres -d app -c \
             'SELECT st_received, st_lag_num_events, st_lag_time FROM {}.sl_status' >/dev/null\n",
            sh_quote(&cluster.node(1).instance.socketdir),
            cluster.schema_sql()
        ),
    )?;
    row(
        "psql",
        "status (sl_status on the origin)",
        || Agent::new(&sl_status),
        runs,
        &mut notes,
    )?;
    for node in [1, 2] {
        agent(node).run("stop");
    }
    if !notes.is_empty() {
        println!("\nWhat the calls said (ocf-exit-reason of the warm-up call):");
        for note in notes {
            println!("- {note}");
        }
    }
    Ok(())
}

/// A `/bin/sh` script in `dir` running `body` (the bench's runner passes
/// it one argument, the action, which it ignores).
fn script(dir: &Path, name: &str, body: &str) -> Result<PathBuf> {
    let path = dir.join(format!("bench-{name}.sh"));
    std::fs::write(&path, format!("#!/bin/sh\n{body}"))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    Ok(path)
}

/// A path as one word of a shell script.
fn sh_quote(p: &Path) -> String {
    format!("'{}'", p.to_string_lossy().replace('\'', "'\\''"))
}
