//! PostgreSQL on the lab's nodes: an instance per node on the node's own
//! disk, and the `ocf:tusk:postgresql` agent managing them as a clone. What
//! the demo and the scenario tests start from.
//!
//! The agent is the one installed on the host (the tusk-agents package):
//! nodes share the host's /usr/lib/ocf.

use crate::node::NodeDir;
use crate::process::wait_for;
use crate::Lab;
use anyhow::{bail, Context, Result};
use std::time::Duration;

pub const PGDATA: &str = "/var/lib/postgresql/15/lab";
pub const BINDIR: &str = "/usr/lib/postgresql/15/bin";
pub const AGENT: &str = "/usr/lib/ocf/resource.d/tusk/postgresql";
/// The clone's primitive; its instances are `pg` in crm_mon.
pub const RESOURCE: &str = "pg";

/// initdb on every node that has no instance yet. Clients reach a node over
/// the lab's private network, which exists only inside the lab: trust there
/// keeps the workload free of passwords.
pub fn initdb_all(lab: &Lab) -> Result<()> {
    if !std::path::Path::new(AGENT).is_file() {
        bail!("{AGENT} is not installed: build and install the tusk-agents package (packaging/build, dpkg -i dist/*.deb)");
    }
    for node in lab.nodes()? {
        let on_host = host_path(lab, &node);
        if on_host.join("PG_VERSION").is_file() {
            continue;
        }
        run(
            lab,
            &node,
            &[
                "install", "-d", "-o", "postgres", "-g", "postgres", "-m", "0700", PGDATA,
            ],
        )?;
        let initdb = format!("{BINDIR}/initdb");
        // Data checksums: pg_rewind needs them (or wal_log_hints) to bring a
        // diverged former primary back as a standby.
        run(
            lab,
            &node,
            &[
                "runuser",
                "-u",
                "postgres",
                "--",
                &initdb,
                "--no-sync",
                "--data-checksums",
                "-A",
                "peer",
                "-U",
                "postgres",
                "-D",
                PGDATA,
            ],
        )?;
        append(&on_host.join("postgresql.conf"), "listen_addresses = '*'\n")?;
        let hba = format!("host all all {}/24 trust\n", lab_network(lab));
        append(&on_host.join("pg_hba.conf"), &hba)?;
    }
    Ok(())
}

/// Creates the clone of the postgresql agent (one instance per node) and
/// waits until it is started everywhere.
pub fn create_clone(lab: &Lab, timeout: Duration) -> Result<()> {
    let first = lab
        .nodes()?
        .into_iter()
        .next()
        .context("a lab without nodes")?;
    run(
        lab,
        &first,
        &[
            "pcs",
            "resource",
            "create",
            RESOURCE,
            "ocf:tusk:postgresql",
            &format!("pgdata={PGDATA}"),
            "op",
            "monitor",
            "interval=10s",
            "timeout=20s",
            "clone",
        ],
    )?;
    wait_started(lab, timeout)
}

/// Waits until `pg` runs on every node that is up, as the first of them sees it.
pub fn wait_started(lab: &Lab, timeout: Duration) -> Result<()> {
    let nodes = lab.nodes()?;
    wait_for("the postgresql clone to run on every node", timeout, || {
        let Some(observer) = nodes.iter().find(|n| lab.is_running(n).unwrap_or(false)) else {
            return Ok(false);
        };
        let Ok(view) = lab.view(observer) else {
            return Ok(false);
        };
        let up: Vec<&String> = nodes.iter().filter(|n| view.is_online(n)).collect();
        let started = view.nodes_in_role(RESOURCE, "Started");
        Ok(!up.is_empty() && up.iter().all(|n| started.contains(&n.as_str())))
    })
}

/// How a client in the switch reaches the instance on `node`.
pub fn conninfo(lab: &Lab, node: &str) -> Result<String> {
    Ok(format!(
        "host={} port=5432 user=postgres dbname=postgres",
        lab.address(node)?
    ))
}

fn lab_network(lab: &Lab) -> std::net::Ipv4Addr {
    let [a, b, c, _] = lab.switch_address().octets();
    std::net::Ipv4Addr::new(a, b, c, 0)
}

/// The node's data directory as the host sees it: the node's
/// /var/lib/postgresql is a bind mount of one of the lab's disks.
fn host_path(lab: &Lab, node: &str) -> std::path::PathBuf {
    let relative = PGDATA
        .strip_prefix("/var/lib/postgresql/")
        .expect("PGDATA lives on the node's /var/lib/postgresql disk");
    NodeDir::new(lab.dir(), node)
        .disk("var-lib-postgresql")
        .join(relative)
}

/// Appends to a file initdb created; appending keeps its owner and mode.
fn append(path: &std::path::Path, text: &str) -> Result<()> {
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .with_context(|| format!("appending to {}", path.display()))
}

fn run(lab: &Lab, node: &str, args: &[&str]) -> Result<()> {
    let out = lab.exec(node, args)?;
    if !out.status.success() {
        bail!(
            "{} on {node} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}
