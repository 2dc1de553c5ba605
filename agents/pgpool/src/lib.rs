//! `ocf:tusk:pgpool`, the pgpool-II resource agent, and what it knows of
//! pgpool and how it talks to it.

pub mod backends;
pub mod config;
pub mod daemon;
pub mod ipc;
pub mod live;
pub mod monitor;
pub mod pcp;
pub mod pcppass;
pub mod reconcile;
pub mod session;
pub mod settings;
pub mod slony;
pub mod start;
pub mod stop;
pub mod validate;

use config::PoolConfig;
use ocf::{warning, ActionSpec, Agent, AgentInfo, Context, Result, Status};

pub const AGENT: AgentInfo = AgentInfo {
    name: "pgpool",
    version: env!("CARGO_PKG_VERSION"),
    shortdesc: "pgpool-II connection pooler in front of a PostgreSQL cluster",
    longdesc: "Manages pgpool-II (4.3) in streaming-replication mode in front of a PostgreSQL \
cluster that Pacemaker fails over (ocf:tusk:postgresql as a promotable clone). pgpool follows: \
its failover_command and follow_primary_command must be empty and its watchdog off \
(validate-all refuses them).

start moves aside a pid file naming a dead PID, a zombie or a process that is not this pgpool \
(pgpool itself refuses to start while the PID lives), ends processes of this configuration left \
without a main process (children survive a SIGKILL of the main process and keep listening), \
removes socket files nothing listens on and the shared memory of a killed pgpool, writes \
pgpool_status from what the backends say (so that a status file from an older run neither keeps \
a healthy backend down nor lets a stale primary in), starts pgpool as user in the foreground (-n) \
in a session of its own, waits until it answers on PCP, and reconciles once. stop uses fast, then \
immediate shutdown, then SIGKILL of every process of this configuration, and succeeds only when \
nothing of it runs or listens; it never signals another configuration's pgpool. (No smart \
shutdown first: it waits for clients to leave, and pgpool 4.3 ignores any later signal once a \
shutdown has begun.)

monitor speaks PCP natively (no fork): 0 when pgpool answers and listens, 7 only when nothing of \
it runs, 1 with the reason when it does not answer in time (frozen) or its processes run without \
a main process. Backends all down (a PostgreSQL failover in progress) is still 0: their state is \
logged on change and published as the node attribute RESOURCE-backends. With reconcile=true the \
monitor then compares pgpool's view of each backend with the backends' own and follows the \
cluster without restarting pgpool: a detached standby that streams from the current primary is \
attached; the current primary, when pgpool does not call it primary, is attached or promoted in \
pgpool (without -s; a promotion drops pgpool's client sessions, so the agent makes it only when \
pgpool's primary is wrong) and the standbys streaming from it are attached again; a backend that \
does not follow the current primary is never attached. One log line per change.

In slony mode (backend_clustering_mode = 'slony', slony_cluster naming the Slony-I cluster) \
pgpool sends every write to its lowest-numbered attached backend and cannot be promoted to \
another: the monitor asks each backend for its Slony node id and the sets' origin (one \
round trip per backend at every monitor, since nothing in pgpool's view shows a MOVE SET), \
detaches the backends numbered below the origin's, attaches the origin and the subscribers \
numbered above it, and changes nothing while the origin cannot be told (a move in progress, \
sets with different origins). Detached backends also leave read balancing: number the \
backends so that the usual origin is node 0, or put a floating address with the promoted \
ocf:tusk:slon instance instead (README).

Sizing pgpool's settings beside Pacemaker's. search_primary_node_timeout: after its primary \
fails, pgpool searches that long for a new one while new clients wait; a promotion within the \
search is found by pgpool itself (0.8 s after it, measured), one after it is followed by the \
agent's next monitor. Set it somewhat above the time Pacemaker takes to promote a standby (the \
postgresql resource's monitor interval plus its promote time, a few seconds to a minute), not \
the default 5 min: clients would hang that long when no standby can be promoted, and a pgpool \
started while no backend is a primary does not answer until the search ends, so keep it below \
this resource's start timeout. health_check_period, health_check_timeout, \
health_check_max_retries: pgpool detaches a failed backend at its next failed health check; keep \
period times retries below the postgresql monitor interval, so that pgpool stops sending clients \
to a dead server before Pacemaker acts. This resource's monitor interval bounds how long a \
recovered standby or a missed promotion goes unnoticed by pgpool: 10 s is a good start. Set \
backend_application_nameN to the application_name of each standby's WAL receiver (the node name \
with ocf:tusk:postgresql): that is how the agent knows a standby streams from the primary.",
    params: config::PARAMS,
    actions: &[
        ActionSpec::new("start", 60),
        ActionSpec::new("stop", 60),
        ActionSpec::new("monitor", 20).interval(10),
        ActionSpec::new("validate-all", 10),
        ActionSpec::new("meta-data", 5),
    ],
};

/// The agent: each action reads its validated configuration once and hands
/// it to the module named after the action.
pub struct Pgpool;

impl Agent for Pgpool {
    fn info(&self) -> &AgentInfo {
        &AGENT
    }

    fn start(&self, ctx: &Context) -> Result<Status> {
        start::start(&PoolConfig::from_env()?, ctx)
    }

    fn stop(&self, ctx: &Context) -> Result<Status> {
        // A stop that fails gets the node fenced: any parameter but the
        // four it needs may be wrong.
        let cfg = PoolConfig::from_env().unwrap_or_else(|e| {
            warning!("{}; stopping with what can be read", e.reason());
            PoolConfig::for_stop()
        });
        let stopped = stop::stop(&cfg, &ctx.deadline)?;
        if ctx.env.node.is_some() {
            // A stopped pgpool has no view of its backends: crm_mon -A
            // would otherwise show the last one as if it still ran.
            let attributes = ctx.attributes();
            attributes.keep_note("backends", None);
            if let Err(e) = attributes.publish_fresh("backends", None, false, &ctx.deadline) {
                warning!("{}", e.reason());
            }
        }
        Ok(stopped)
    }

    fn monitor(&self, ctx: &Context) -> Result<Status> {
        monitor::monitor(&PoolConfig::from_env()?, ctx)
    }

    fn validate(&self, ctx: &Context) -> Result<Status> {
        let cfg = PoolConfig::from_env()?;
        let checked = validate::check(&cfg)?;
        validate::slony_origin(&cfg, &checked, &ctx.deadline.share(0.8))?;
        Ok(Status::Success)
    }
}
