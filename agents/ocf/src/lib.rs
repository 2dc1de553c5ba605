//! The Open Cluster Framework core shared by the tusk resource agents:
//! return codes and errors, parameter declarations and meta-data, the action
//! dispatcher, logging, deadlines, running commands as another user, and PID
//! validation.

pub mod attributes;
pub mod command;
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
