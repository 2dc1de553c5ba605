//! monitor: the truth about this pgpool, not a PID check, and cheaply.
//!
//! 7 only when nothing of this pgpool runs; 1, with the reason, for
//! processes of it left without a main process (so a probe after a
//! partition heals finds them and stop removes them), or a main process
//! that does not answer PCP in time (frozen) or no longer listens for
//! clients; 0 when it answers. A pgpool whose backends are all down is
//! running: that is what a PostgreSQL failover looks like from pgpool, and
//! a failure here would make Pacemaker move pgpool in the middle of every
//! one. The backends' state goes to the log (on change) and to the node
//! attribute `RESOURCE-backends`.
//!
//! Steady state forks nothing: the pid file and /proc, one PCP session for
//! the node count and one for the node infos, no SQL.

use crate::backends;
use crate::config::{Layout, PoolConfig};
use crate::daemon::Pgpool;
use crate::pcp::NodeInfo;
use crate::reconcile;
use crate::settings::{BackendConf, Settings, DEFAULT_PID_FILE};
use crate::{start, validate};
use nix::unistd::{Gid, Uid};
use ocf::process::{self, ProcInfo};
use ocf::service::{pid_list, State};
use ocf::{debug, info, warning, Context, OcfError, Result, Status};
use std::os::unix::fs::FileTypeExt;

pub fn monitor(cfg: &PoolConfig, ctx: &Context) -> Result<Status> {
    let settings = match Settings::read(&cfg.config) {
        Ok(s) => s,
        Err(e) => return without_configuration(cfg, e),
    };
    let layout = Layout::resolve(cfg, &settings)?;
    let pgpool = Pgpool::new(cfg, &layout, None);
    let main = match pgpool.observe()? {
        State::Stopped { stale } => {
            if let Some(why) = stale {
                debug!("{why}");
            }
            return Ok(Status::NotRunning);
        }
        State::Orphaned { members, stale } => {
            return Err(OcfError::generic(format!(
                "processes of this pgpool run without a main process (PIDs {}){}",
                pid_list(&members),
                stale.map(|s| format!("; {s}")).unwrap_or_default()
            )))
        }
        State::Running(main) => main,
    };
    let deadline = &ctx.deadline;
    let pcp = validate::pcp(cfg, &layout)?;
    let count = pcp.node_count(&deadline.share(0.5)).map_err(|e| {
        OcfError::generic(format!("pgpool {} runs but does not answer: {e}", main.pid))
    })?;
    accepts_clients(&pgpool, &main, &layout)?;
    let asker = cfg
        .reconcile
        .then(|| {
            let asker = start::asker(cfg, (Uid::from_raw(main.uid), Gid::from_raw(main.gid)))?;
            Ok((asker, cfg.follow(&settings)?))
        })
        .transpose()
        .unwrap_or_else(|e: OcfError| {
            warning!("not reconciling: {}", e.reason());
            None
        });
    let (nodes, missing) = match asker {
        Some((asker, follow)) => {
            let backends = settings.backends()?;
            let o = backends::reconcile(&pcp, count, &asker, &backends, &follow, deadline);
            (o.nodes, o.missing)
        }
        None => {
            let infos = pcp.node_infos(count, deadline);
            (infos.nodes, infos.missing)
        }
    };
    let unknown: Vec<u32> = missing.iter().map(|(n, _)| *n).collect();
    report(
        ctx,
        &nodes,
        &unknown,
        &settings.backends().unwrap_or_default(),
    );
    Ok(Status::Success)
}

/// pgpool.conf cannot be read: nothing of this pgpool can be running if
/// neither the pid file nor the command lines show one.
fn without_configuration(cfg: &PoolConfig, e: OcfError) -> Result<Status> {
    let pid_file = cfg
        .pid_file
        .clone()
        .unwrap_or_else(|| DEFAULT_PID_FILE.into());
    match Pgpool::without_sockets(cfg, pid_file, None).observe()? {
        State::Stopped { .. } => {
            debug!("{}; nothing of it runs", e.reason());
            Ok(Status::NotRunning)
        }
        _ => Err(e),
    }
}

/// The main process still holds the listening client socket, and its file
/// is still there for clients to find.
fn accepts_clients(pgpool: &Pgpool, main: &ProcInfo, layout: &Layout) -> Result<()> {
    let socket = &layout.socket;
    let there = std::fs::symlink_metadata(socket).is_ok_and(|m| m.file_type().is_socket());
    if !there {
        return Err(OcfError::generic(format!(
            "pgpool {} runs, but its socket {} is gone: clients cannot connect",
            main.pid,
            socket.display()
        )));
    }
    let inodes = pgpool
        .listeners()
        .map_err(|e| OcfError::generic(format!("reading /proc/net/unix: {e}")))?
        .into_iter()
        .filter(|s| s.path == *socket)
        .map(|s| s.inode)
        .collect();
    if !process::holds_any_socket(main.pid, &inodes) {
        return Err(OcfError::generic(format!(
            "pgpool {} runs, but does not listen on {}",
            main.pid,
            socket.display()
        )));
    }
    Ok(())
}

/// The backends' state: a log line when it changed, and the node
/// attribute `RESOURCE-backends` when Pacemaker runs the agent (outside a
/// cluster there is no attribute daemon to ask). Backends are named as
/// `backends` (pgpool.conf) names them.
pub fn report(ctx: &Context, nodes: &[NodeInfo], unknown: &[u32], backends: &[BackendConf]) {
    if nodes.is_empty() && unknown.is_empty() {
        return;
    }
    let names = backends
        .iter()
        .map(|b| (b.id, b.application_name.clone()))
        .collect();
    let summary = reconcile::summary(nodes, unknown, &names);
    let attributes = ctx.attributes();
    if attributes.note("backends").as_deref() != Some(summary.as_str()) {
        if reconcile::none_attached(nodes) {
            warning!(
                "backends: {summary}: pgpool refuses every client until one is attached \
                 (a PostgreSQL failover in progress?)"
            );
        } else {
            info!("backends: {summary}");
        }
        attributes.keep_note("backends", Some(&summary));
    }
    if ctx.env.node.is_some() {
        if let Err(e) = attributes.publish("backends", Some(&summary), false, &ctx.deadline) {
            warning!("{}", e.reason());
        }
    }
}
