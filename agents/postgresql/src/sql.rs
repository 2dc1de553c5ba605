//! The local server, over its unix socket, as the server's OS user.

use crate::config::PgConfig;
use nix::unistd::{Gid, Uid};
use ocf::{Deadline, OcfError, Result};

/// What the server says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerState {
    pub in_recovery: bool,
}

/// The local server, over the unix socket, as `pguser`.
pub fn local(cfg: &PgConfig) -> pgclient::Config {
    let mut pg = pgclient::Config::new();
    pg.host_path(&cfg.socketdir)
        .port(cfg.pgport)
        .user(&cfg.pguser)
        .dbname(&cfg.pgdb);
    pg
}

/// Connects as `pguser` over the unix socket and asks the server's state.
///
/// Peer authentication (Debian's default for local connections) checks the
/// connecting process's effective uid, so the agent takes on the server
/// user's identity for the round trip instead of forking psql as that
/// user: the monitor forks nothing.
/// `as_user` is the uid and gid the connection is made with: the server's.
pub fn server_state(
    cfg: &PgConfig,
    as_user: (Uid, Gid),
    deadline: &Deadline,
) -> Result<ServerState> {
    let results = pgclient::query(
        local(cfg),
        Some(as_user),
        deadline,
        "SELECT pg_is_in_recovery()",
    )?;
    match pgclient::value(&results, 0, 0, 0) {
        Some(v) => Ok(ServerState {
            in_recovery: v == "t",
        }),
        None => Err(OcfError::generic("pg_is_in_recovery() returned no row")),
    }
}
