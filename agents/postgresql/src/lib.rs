//! `ocf:tusk:postgresql`, the PostgreSQL resource agent.

pub mod config;
pub mod monitor;
pub mod postmaster;
pub mod sql;
pub mod start;
pub mod stop;
pub mod validate;

use config::PgConfig;
use ocf::{warning, Action, ActionSpec, AgentInfo, OcfEnv, OcfError, Result, Status};

pub const AGENT: AgentInfo = AgentInfo {
    name: "postgresql",
    version: env!("CARGO_PKG_VERSION"),
    shortdesc: "PostgreSQL server",
    longdesc: "Manages a PostgreSQL server (12 and later). Every PID is verified through /proc \
before it is believed: a postmaster.pid left behind by a crash or naming a PID that another \
process now uses never makes the agent report the server as running, and never keeps it from \
starting. stop escalates from fast to immediate shutdown to SIGKILL of every process of the data \
directory inside its timeout. The monitor makes one connection over the unix socket and forks \
nothing.",
    params: config::PARAMS,
    actions: &[
        ActionSpec::new("start", 60),
        ActionSpec::new("stop", 60),
        ActionSpec::new("monitor", 20).interval(15),
        ActionSpec::new("validate-all", 10),
        ActionSpec::new("meta-data", 5),
    ],
};

pub fn run(action: Action, env: &OcfEnv) -> Result<Status> {
    let deadline = env.deadline(AGENT.timeout_of(action.name()));
    if action == Action::Stop {
        // A stop that fails gets the node fenced: it needs pgdata alone.
        let pgdata = match PgConfig::from_env() {
            Ok(cfg) => cfg.pgdata,
            Err(e) => {
                let pgdata = PgConfig::pgdata_from_env()?;
                warning!("{e}; stopping what runs in {} anyway", pgdata.display());
                pgdata
            }
        };
        return stop::stop(&pgdata, &deadline);
    }
    let cfg = PgConfig::from_env()?;
    match action {
        Action::Start => start::start(&cfg, &deadline),
        Action::Monitor => monitor::monitor(&cfg, &deadline).map(|observed| match observed {
            monitor::Observed::NotRunning => Status::NotRunning,
            monitor::Observed::Running(_) => Status::Success,
        }),
        Action::ValidateAll => validate::check(&cfg, &deadline).map(|_| Status::Success),
        other => Err(OcfError::unimplemented(format!(
            "action {} is not implemented",
            other.name()
        ))),
    }
}
