//! One SQL round trip over the unix socket, as the server's OS user.

use crate::config::PgConfig;
use nix::unistd::{setegid, seteuid, Gid, Uid};
use ocf::{Deadline, OcfError, Result};
use std::time::Duration;

/// What the server says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerState {
    pub in_recovery: bool,
}

/// The rows of one statement: each a list of text values (NULL is `None`).
pub type Rows = Vec<Vec<Option<String>>>;

/// The local server, over the unix socket, as `pguser`.
pub fn local(cfg: &PgConfig) -> postgres::Config {
    let mut pg = postgres::Config::new();
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
    let results = query(
        local(cfg),
        Some(as_user),
        deadline,
        "SELECT pg_is_in_recovery()",
    )?;
    match value(&results, 0, 0, 0) {
        Some(v) => Ok(ServerState {
            in_recovery: v == "t",
        }),
        None => Err(OcfError::generic("pg_is_in_recovery() returned no row")),
    }
}

/// The value at `statement`, `row`, `column` of a [`query`]'s results.
pub fn value(results: &[Rows], statement: usize, row: usize, column: usize) -> Option<&str> {
    results.get(statement)?.get(row)?.get(column)?.as_deref()
}

/// Runs `sql` (one or more statements) in one round trip of the simple
/// query protocol and returns each statement's rows.
///
/// A hung postmaster accepts the socket connection (the kernel queues it)
/// and then never answers, and the client library's connect_timeout covers
/// the socket alone; so the round trip runs on a thread that the deadline
/// abandons. The agent exits soon after, and the thread with it.
pub fn query(
    pg: postgres::Config,
    as_user: Option<(Uid, Gid)>,
    deadline: &Deadline,
    sql: &str,
) -> Result<Vec<Rows>> {
    query_each(pg, as_user, deadline, &[sql])
}

/// Like [`query`], one query after the other on one connection: each in
/// its own implicit transaction (ALTER SYSTEM refuses to run in one with
/// other statements).
pub fn query_each(
    mut pg: postgres::Config,
    as_user: Option<(Uid, Gid)>,
    deadline: &Deadline,
    queries: &[&str],
) -> Result<Vec<Rows>> {
    let budget = deadline.remaining().max(Duration::from_millis(100));
    pg.application_name("tusk")
        .connect_timeout(budget)
        .options(&format!("-c statement_timeout={}", budget.as_millis()));
    let _identity = match as_user {
        Some(user) => Some(Identity::assume(user)?),
        None => None,
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let queries: Vec<String> = queries.iter().map(|q| q.to_string()).collect();
    std::thread::spawn(move || {
        let _ = tx.send(round_trip(&pg, &queries));
    });
    rx.recv_timeout(budget).unwrap_or_else(|_| {
        Err(OcfError::generic(format!(
            "no answer within {:.1}s",
            budget.as_secs_f64()
        )))
    })
}

fn round_trip(pg: &postgres::Config, queries: &[String]) -> Result<Vec<Rows>> {
    let mut client = pg
        .connect(postgres::NoTls)
        .map_err(|e| OcfError::generic(format!("cannot connect: {}", describe(&e))))?;
    // The simple query protocol: one round trip, where a prepared
    // statement would take two.
    let mut messages = Vec::new();
    for sql in queries {
        messages.extend(
            client
                .simple_query(sql)
                .map_err(|e| OcfError::generic(format!("query failed: {}", describe(&e))))?,
        );
    }
    let mut results = Vec::new();
    let mut rows = Rows::new();
    for m in messages {
        match m {
            postgres::SimpleQueryMessage::Row(row) => rows.push(
                (0..row.len())
                    .map(|i| row.get(i).map(str::to_string))
                    .collect(),
            ),
            postgres::SimpleQueryMessage::CommandComplete(_) => {
                results.push(std::mem::take(&mut rows))
            }
            _ => {}
        }
    }
    Ok(results)
}

/// The server's own message where there is one (`FATAL: the database system
/// is starting up`), else the client library's.
fn describe(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => {
            let mut s = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(inner) = source {
                s = format!("{s}: {inner}");
                source = inner.source();
            }
            s
        }
    }
}

/// The effective uid and gid of another user until dropped.
struct Identity {
    restore: Option<(Uid, Gid)>,
}

impl Identity {
    fn assume((as_uid, as_gid): (Uid, Gid)) -> Result<Identity> {
        let (uid, gid) = (Uid::effective(), Gid::effective());
        if uid == as_uid {
            return Ok(Identity { restore: None });
        }
        let fail = |e| OcfError::generic(format!("cannot act as uid {as_uid}: {e}"));
        setegid(as_gid).map_err(fail)?;
        if let Err(e) = seteuid(as_uid) {
            let _ = setegid(gid);
            return Err(fail(e));
        }
        Ok(Identity {
            restore: Some((uid, gid)),
        })
    }
}

impl Drop for Identity {
    fn drop(&mut self) {
        if let Some((uid, gid)) = self.restore {
            // Back to root first: only root may set the group back.
            let _ = seteuid(uid);
            let _ = setegid(gid);
        }
    }
}
