//! Writes each agent's meta-data XML and man page from its declarations:
//! `tusk-docgen metadata DIR` and `tusk-docgen man DIR`.
//!
//! `metadata/` is checked in and a test keeps it equal to the agents'
//! output; the man pages are made at package build time.

use anyhow::{bail, Context, Result};
use ocf::AgentInfo;
use std::path::{Path, PathBuf};

const PROVIDER: &str = "tusk";

/// Every agent, with the example its man page shows.
const AGENTS: &[(&AgentInfo, &str)] = &[
    (
        &tusk_postgresql::AGENT,
        "pcs resource create pg ocf:tusk:postgresql \\\n    pgdata=/var/lib/postgresql/15/main \\\n    config=/etc/postgresql/15/main/postgresql.conf \\\n    op monitor interval=15s timeout=20s",
    ),
    (
        &tusk_pgpool::AGENT,
        "pcs resource create pgpool ocf:tusk:pgpool \\\n    pcp_user=postgres pcp_passfile=/root/.pcppass \\\n    op monitor interval=10s timeout=20s clone",
    ),
    (
        &tusk_slon::AGENT,
        "pcs resource create slon-app ocf:tusk:slon \\\n    cluster_name=app \\\n    conninfo=\"host=/var/run/postgresql dbname=app user=slony\" \\\n    op monitor interval=10s timeout=20s",
    ),
];

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [what, dir] = args.as_slice() else {
        bail!("usage: tusk-docgen metadata|man DIR");
    };
    let dir = PathBuf::from(dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    for (agent, example) in AGENTS {
        let (name, text) = match what.as_str() {
            "metadata" => (format!("{}.xml", agent.name), agent.metadata_xml()),
            "man" => (
                format!("ocf_{PROVIDER}_{}.7", agent.name),
                ocf::manpage::manpage(agent, PROVIDER, example),
            ),
            other => bail!("unknown output {other:?}; expected metadata or man"),
        };
        write(&dir.join(name), &text)?;
    }
    Ok(())
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    println!("{}", path.display());
    Ok(())
}
