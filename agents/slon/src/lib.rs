//! `ocf:tusk:slon`, the Slony-I slon agent: one slon per (cluster, node),
//! its node lock judged from what the lock's backend really is, a start
//! that is done only when slon serves the node, a stop that leaves no
//! process, backend or lock row, and a monitor that reports this node's
//! lag behind the origin.

pub mod config;
pub mod connections;
pub mod daemon;
pub mod database;
pub mod demote;
pub mod failback;
pub mod failover;
pub mod lag;
pub mod monitor;
pub mod nodelock;
pub mod origin;
pub mod peer;
pub mod promotable;
pub mod promote;
pub mod quote;
pub mod slonik;
pub mod start;
pub mod stop;
pub mod validate;

use config::{Instance, SlonConfig};
use ocf::{warning, ActionSpec, Agent, AgentInfo, Context, Result, Role, Status};

pub const AGENT: AgentInfo = AgentInfo {
    name: "slon",
    version: env!("CARGO_PKG_VERSION"),
    shortdesc: "Slony-I replication daemon (slon)",
    longdesc: "Manages the slon daemon of one node of a Slony-I 2.2 cluster. slon's node lock \
(its row in sl_nodelock) is judged from what the backend it names really is (pg_stat_activity \
and, on this host, the process at the other end of that connection), never from whether its PID \
exists: a row left by a crashed slon whose PID now belongs to another process no longer keeps slon \
from starting, and a lock held by a live slon (started by hand, or on another host) makes start \
fail with its name. start succeeds only once the lock row names a backend of the new slon's own \
worker (slon exits 0 after a fatal error, so its exit status proves nothing). stop sends SIGTERM \
twice (slon loses one during its worker restart delay), then SIGKILL, waits until slon's backends \
are gone and removes the node's lock row. The monitor checks the watchdog and its worker through \
/proc and the lock through one query, forks nothing, and answers OCF_DEGRADED (190) when this node \
is further behind the set's origin than lag_time or lag_events allow; a probe reports a slon \
serving this node outside the resource as a failure.

As a promotable clone (notify=true), the Promoted role is the origin of the sets named by the sets \
parameter (reported once Pacemaker promoted the instance: start leaves it unpromoted with the \
origin's score). Promotion scores follow sl_set.set_origin (the origin 1000) and the subscribers' \
confirmed events (the most advanced 900, others 800). demote makes a planned move (LOCK SET, MOVE \
SET, WAIT FOR EVENT through slonik, inside its timeout) to the node being promoted; promote finds \
the sets there, or moves them itself when the old origin answers, or runs FAILOVER and DROP NODE \
of the old origin only once its PostgreSQL is known stopped (nothing listens at its address) or \
its node is fenced (crm_mon shows it offline and clean). A failed-over old origin rejoins at its \
next start under failback=auto (its rows saved first, then stored and subscribed again: see \
failback); under failback=off that start fails (5) and names the steps.",
    params: config::PARAMS,
    actions: &[
        ActionSpec::new("start", 60),
        ActionSpec::new("stop", 60),
        ActionSpec::new("promote", 90),
        ActionSpec::new("demote", 90),
        ActionSpec::new("notify", 20),
        ActionSpec::new("monitor", 20).interval(10),
        ActionSpec::new("monitor", 20)
            .interval(9)
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
pub struct SlonAgent;

impl Agent for SlonAgent {
    fn info(&self) -> &AgentInfo {
        &AGENT
    }

    fn start(&self, ctx: &Context) -> Result<Status> {
        let cfg = SlonConfig::from_env(&ctx.env.instance)?;
        if !ctx.promotable() {
            return start::start(&cfg, None, &ctx.deadline);
        }
        validate::check_promotable(&cfg, &ctx.env)?;
        start::start(&cfg, Some(&ctx.attributes()), &ctx.deadline)
    }

    fn stop(&self, ctx: &Context) -> Result<Status> {
        // A stop that fails gets the node fenced: it needs only what
        // identifies the slon. Without even that, start could never have
        // run one.
        let instance = match Instance::from_env(&ctx.env.instance) {
            Ok(instance) => instance,
            Err(e) => {
                warning!("{}; no slon of this configuration can run", e.reason());
                return Ok(Status::Success);
            }
        };
        if let Err(e) = SlonConfig::from_env(&ctx.env.instance) {
            warning!("{}; stopping slon anyway", e.reason());
        }
        let stopped = stop::stop(&instance, &ctx.deadline)?;
        if ctx.promotable() {
            // A stopped instance is not promoted and keeps no score.
            promotable::set_promoted(&ctx.attributes(), false);
            if let Err(e) = ctx.attributes().clear_own_score(&ctx.deadline) {
                warning!("{}", e.reason());
            }
        }
        Ok(stopped)
    }

    fn monitor(&self, ctx: &Context) -> Result<Status> {
        let cfg = SlonConfig::from_env(&ctx.env.instance)?;
        monitor::monitor(&cfg, &ctx.attributes(), ctx.promotable(), &ctx.deadline)
    }

    fn validate(&self, ctx: &Context) -> Result<Status> {
        let cfg = SlonConfig::from_env(&ctx.env.instance)?;
        validate::check(&cfg)?;
        if ctx.promotable() {
            validate::check_promotable(&cfg, &ctx.env)?;
        }
        Ok(Status::Success)
    }

    fn promote(&self, ctx: &Context) -> Result<Status> {
        let cfg = SlonConfig::from_env(&ctx.env.instance)?;
        validate::check_promotable(&cfg, &ctx.env)?;
        promote::promote(&cfg, ctx)
    }

    fn demote(&self, ctx: &Context) -> Result<Status> {
        let cfg = SlonConfig::from_env(&ctx.env.instance)?;
        validate::check_promotable(&cfg, &ctx.env)?;
        demote::demote(&cfg, ctx)
    }

    /// Scores come from the catalog at every monitor: the notifications
    /// carry nothing this agent needs but the promote target, which
    /// Pacemaker also passes to the demote itself.
    fn notify(&self, _ctx: &Context) -> Result<Status> {
        Ok(Status::Success)
    }
}
