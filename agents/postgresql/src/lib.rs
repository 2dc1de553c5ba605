//! `ocf:tusk:postgresql`, the PostgreSQL resource agent.

pub mod cluster;
pub mod config;
pub mod controldata;
pub mod demote;
pub mod election;
pub mod monitor;
pub mod notify;
pub mod postmaster;
pub mod promote;
pub mod rebuild;
pub mod rejoin;
pub mod replication;
pub mod rewind;
pub mod slots;
pub mod sql;
pub mod standby;
pub mod start;
pub mod stop;
pub mod validate;
pub mod wal;
pub mod wal_end;

use config::PgConfig;
use ocf::{warning, ActionSpec, Agent, AgentInfo, Context, Result, Role, Status};
use start::Mode;

pub const AGENT: AgentInfo = AgentInfo {
    name: "postgresql",
    version: env!("CARGO_PKG_VERSION"),
    shortdesc: "PostgreSQL server",
    longdesc: "Manages a PostgreSQL server (12 and later). Every PID is verified through /proc \
before it is believed: a postmaster.pid left behind by a crash or naming a PID that another \
process now uses never makes the agent report the server as running, and never keeps it from \
starting. stop escalates from fast to immediate shutdown to SIGKILL of every process of the data \
directory inside its timeout. The monitor makes one connection over the unix socket and forks \
nothing.

As a promotable clone (notify=true), every instance starts as a standby of primary_host and only \
promote makes a primary: the standby with the most WAL, after it replayed a demoted primary's \
shutdown checkpoint. A former primary whose WAL diverged is rewound with pg_rewind before it \
rejoins (rewind=auto). The primary scores the standbys from pg_stat_replication, falls back to \
asynchronous replication when the last standby is lost (sync=available), and reports itself \
failed (9) when another node is on a newer timeline. Under rebuild=auto, a node with a missing or \
empty pgdata, or one that cannot follow the primary and cannot be rewound, is copied anew from \
the primary by a detached worker: start returns at once, the monitor reports the copy as degraded \
(190), and the node is no candidate until it streams. Node attributes RESOURCE-timeline, \
RESOURCE-sync and RESOURCE-rebuild show the state.",
    params: config::PARAMS,
    actions: &[
        ActionSpec::new("start", 60),
        ActionSpec::new("stop", 60),
        ActionSpec::new("promote", 60),
        ActionSpec::new("demote", 120),
        ActionSpec::new("notify", 60),
        ActionSpec::new("monitor", 20).interval(15),
        ActionSpec::new("monitor", 20)
            .interval(10)
            .role(Role::Promoted),
        ActionSpec::new("monitor", 20)
            .interval(11)
            .role(Role::Unpromoted),
        ActionSpec::new("validate-all", 10),
        ActionSpec::new("meta-data", 5),
    ],
};

/// The agent: each action reads its validated configuration once and hands
/// it to the module named after the action.
pub struct Postgresql;

impl Agent for Postgresql {
    fn info(&self) -> &AgentInfo {
        &AGENT
    }

    fn start(&self, ctx: &Context) -> Result<Status> {
        let mode = if ctx.promotable() {
            Mode::Standby
        } else {
            Mode::AsConfigured
        };
        start::start(&PgConfig::from_env()?, &ctx.env, mode, &ctx.deadline)
    }

    fn stop(&self, ctx: &Context) -> Result<Status> {
        // A stop that fails gets the node fenced: it needs pgdata alone.
        let pgdata = match PgConfig::from_env() {
            Ok(cfg) => cfg.pgdata,
            Err(e) => {
                let pgdata = PgConfig::pgdata_from_env()?;
                warning!("{e}; stopping what runs in {} anyway", pgdata.display());
                pgdata
            }
        };
        // A rebuild first: its worker may be about to start the server.
        rebuild::stop(&ctx.env, &pgdata, &ctx.deadline.share(0.4))?;
        let stopped = stop::stop(&pgdata, &ctx.deadline)?;
        if ctx.promotable() {
            // A stopped instance keeps no promotion score: started again,
            // an old primary's would otherwise outrank the new primary.
            if let Err(e) = ctx.attributes().clear_own_score(&ctx.deadline) {
                warning!("{}", e.reason());
            }
            // Nor the primary's pg-sync, should it have been the primary.
            if let Err(e) = cluster::Cluster::new(&ctx.env).publish_sync_gone(&ctx.deadline) {
                warning!("{}", e.reason());
            }
        }
        Ok(stopped)
    }

    fn monitor(&self, ctx: &Context) -> Result<Status> {
        let cfg = PgConfig::from_env()?;
        if ctx.promotable() {
            if let Some(rebuilding) = rebuild::monitor(&cfg, &ctx.env, &ctx.deadline) {
                return rebuilding;
            }
            return monitor::monitor_promotable(&cfg, &ctx.env, &ctx.deadline);
        }
        monitor::monitor(&cfg, &ctx.deadline).map(|observed| match observed {
            monitor::Observed::NotRunning => Status::NotRunning,
            monitor::Observed::Running(_) => Status::Success,
        })
    }

    fn validate(&self, ctx: &Context) -> Result<Status> {
        let cfg = PgConfig::from_env()?;
        if ctx.promotable()
            && cfg.replication.rebuild == config::RebuildPolicy::Auto
            && rebuild::DataDir::of(&cfg.pgdata)?.is_blank()
        {
            // A node to be built, not one missing an installation.
            ocf::OsUser::lookup(&cfg.pguser)?;
            validate::check_promotable(&cfg, &ctx.env)?;
            return Ok(Status::Success);
        }
        validate::check(&cfg, &ctx.deadline)?;
        if ctx.promotable() {
            validate::check_promotable(&cfg, &ctx.env)?;
        }
        Ok(Status::Success)
    }

    fn promote(&self, ctx: &Context) -> Result<Status> {
        promote::promote(&PgConfig::from_env()?, &ctx.env, &ctx.deadline)
    }

    fn demote(&self, ctx: &Context) -> Result<Status> {
        demote::demote(&PgConfig::from_env()?, &ctx.env, &ctx.deadline)
    }

    fn notify(&self, ctx: &Context) -> Result<Status> {
        notify::notify(&PgConfig::from_env()?, &ctx.env, &ctx.deadline)
    }
}
