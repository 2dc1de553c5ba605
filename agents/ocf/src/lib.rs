//! The Open Cluster Framework core shared by the tusk resource agents.
//!
//! An agent is a small binary that Pacemaker runs as `AGENT ACTION` with
//! its parameters in `OCF_RESKEY_*`. This crate knows everything about that
//! contract that is not the service's own business, so that an agent's code
//! reads like the actions it implements:
//!
//! | module | what it gives an agent |
//! |---|---|
//! | [`dispatch`] | the [`Agent`] trait, the per-call [`Context`], and `main` |
//! | [`params`], [`metadata`], [`manpage`] | parameters declared once: parsing, meta-data XML, man page |
//! | [`env`](mod@env) | what Pacemaker says about the call (timeout, interval, role, clone settings) |
//! | [`error`](mod@error), [`status`] | [`OcfError`] carrying its OCF [`Status`]; the one place it becomes an exit code is `dispatch` |
//! | [`deadline`] | time budgets: every wait ends before Pacemaker's timeout |
//! | [`service`] | a daemon observed through its pid file and /proc; the stop ladder |
//! | [`process`] | what a PID really is (/proc), signals that never hit a reused PID |
//! | [`fs`] | files in directories the service account can write: no symlinks, regular files, bounded reads |
//! | [`command`] | programs run as another user, without a shell, inside a deadline |
//! | [`attributes`], [`notify`] | node attributes and promotion scores (written only on change), clone notifications |
//! | [`crm_mon`] | the cluster as this node's Pacemaker shows it: quorum, nodes online, instances and roles |
//! | [`quorum`] | whether this node's partition has quorum, from corosync's quorum API (no fork) |
//! | [`log`] | one line per decision, to stderr, syslog and Pacemaker's log files |
//!
//! A new agent, in outline:
//!
//! ```ignore
//! use ocf::{ActionSpec, Agent, AgentInfo, Context, Param, Result, Status};
//!
//! const PARAMS: &[Param] = &[
//!     Param::string("config").required().short("...").long("..."),
//!     Param::choice("mode", &["fast", "safe"]).default("safe").short("...").long("..."),
//! ];
//!
//! pub const INFO: AgentInfo = AgentInfo {
//!     name: "mydaemon", version: env!("CARGO_PKG_VERSION"),
//!     shortdesc: "...", longdesc: "...", params: PARAMS,
//!     actions: &[ActionSpec::new("start", 20), ActionSpec::new("stop", 20),
//!                ActionSpec::new("monitor", 20).interval(10),
//!                ActionSpec::new("validate-all", 10), ActionSpec::new("meta-data", 5)],
//! };
//!
//! pub struct MyDaemon;
//!
//! impl Agent for MyDaemon {
//!     fn info(&self) -> &AgentInfo { &INFO }
//!     fn start(&self, ctx: &Context) -> Result<Status> {
//!         let cfg = Config::from_env()?;          // typed, validated once
//!         // observe (ocf::service::observe), decide (a pure function), act
//!         # todo!()
//!     }
//!     fn stop(&self, ctx: &Context) -> Result<Status> {
//!         ocf::service::stop(&Daemon::of(&Config::pid_file_from_env()?), &LADDER, &ctx.deadline)?;
//!         Ok(Status::Success)
//!     }
//!     fn monitor(&self, ctx: &Context) -> Result<Status> { # todo!() }
//!     fn validate(&self, ctx: &Context) -> Result<Status> { # todo!() }
//! }
//!
//! // main.rs
//! fn main() -> std::process::ExitCode { ocf::dispatch::main(&MyDaemon) }
//! ```
//!
//! The core answers meta-data, usage errors, actions the meta-data does not
//! list, and promote or demote outside a promotable clone. Tests run the
//! binary as Pacemaker would with `testing::Agent` (feature `testing`)
//! and check its meta-data with `testing::check_metadata`.

pub mod attributes;
pub mod command;
pub mod crm_mon;
pub mod deadline;
pub mod dispatch;
pub mod env;
pub mod error;
pub mod fs;
pub mod log;
pub mod manpage;
pub mod metadata;
pub mod notify;
pub mod params;
pub mod process;
pub mod quorum;
pub mod service;
pub mod status;
#[cfg(feature = "testing")]
pub mod testing;

pub use command::{OsUser, Output};
pub use deadline::Deadline;
pub use dispatch::{Action, Agent, Context};
pub use env::OcfEnv;
pub use error::{OcfError, Result};
pub use metadata::{ActionSpec, AgentInfo, Role};
pub use params::{Param, ParamType, Params};
pub use status::Status;
