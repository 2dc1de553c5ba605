//! One SQL round trip that answers before the deadline, whatever the server
//! does.

use crate::tls::Negotiation;
use crate::{Config, Error, ErrorKind, Identity, Result};
use nix::unistd::{Gid, Uid};
use ocf::Deadline;
use postgres::config::SslMode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The rows of one statement: each a list of text values (NULL is `None`).
pub type Rows = Vec<Vec<Option<String>>>;

/// The value at `statement`, `row`, `column` of a [`query`]'s results.
pub fn value(results: &[Rows], statement: usize, row: usize, column: usize) -> Option<&str> {
    results.get(statement)?.get(row)?.get(column)?.as_deref()
}

/// Runs `sql` (one or more statements separated by `;`) in one round trip
/// of the simple query protocol and returns each statement's rows.
///
/// `as_user` is the uid and gid to connect as ([`Identity`]), `None` to
/// connect as the agent itself. The session gets `application_name=tusk`
/// and a `statement_timeout` of the time left, and is closed at the end.
///
/// A hung postmaster accepts the socket connection (the kernel queues it)
/// and then never answers, and the client library's `connect_timeout`
/// covers the socket alone; so the round trip runs on a thread that the
/// deadline abandons. The agent exits soon after, and the thread with it.
pub fn query(
    pg: Config,
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
    mut pg: Config,
    as_user: Option<(Uid, Gid)>,
    deadline: &Deadline,
    queries: &[&str],
) -> Result<Vec<Rows>> {
    let budget = deadline.remaining().max(Duration::from_millis(100));
    pg.application_name("tusk")
        .connect_timeout(budget)
        .options(&format!("-c statement_timeout={}", budget.as_millis()));
    let negotiation = pg.get_tls().negotiation(pg.get_hosts())?;
    let _identity = as_user.map(Identity::assume).transpose()?;
    let (tx, rx) = std::sync::mpsc::channel();
    let queries: Vec<String> = queries.iter().map(|q| q.to_string()).collect();
    let connected = Arc::new(AtomicBool::new(false));
    let session = Arc::clone(&connected);
    std::thread::spawn(move || {
        let _ = tx.send(round_trip(&pg, negotiation, &queries, &session));
    });
    rx.recv_timeout(budget).unwrap_or_else(|_| {
        Err(Error::new(
            ErrorKind::Timeout {
                connected: connected.load(Ordering::SeqCst),
            },
            format!("no answer within {:.1}s", budget.as_secs_f64()),
        ))
    })
}

fn round_trip(
    pg: &postgres::Config,
    negotiation: Negotiation,
    queries: &[String],
    connected: &AtomicBool,
) -> Result<Vec<Rows>> {
    let mut pg = pg.clone();
    let connected_session = match negotiation {
        Negotiation::Clear => pg.ssl_mode(SslMode::Disable).connect(postgres::NoTls),
        Negotiation::Tls(mode, connector) => pg.ssl_mode(mode).connect(connector),
    };
    let mut client = connected_session.map_err(|e| Error::from_client("cannot connect", &e))?;
    connected.store(true, Ordering::SeqCst);
    // The simple query protocol: one round trip, where a prepared
    // statement would take two.
    let mut messages = Vec::new();
    for sql in queries {
        let answer = client.simple_query(sql).map_err(|e| {
            let e = Error::from_client("query failed", &e);
            match e.kind() {
                // A timeout of the socket after the session started.
                ErrorKind::Timeout { .. } => Error::new(
                    ErrorKind::Timeout { connected: true },
                    e.reason().to_string(),
                ),
                _ => e,
            }
        })?;
        messages.extend(answer);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_finds_a_cell_and_tells_null_from_missing() {
        let results = vec![vec![vec![Some("t".to_string()), None]], vec![]];
        assert_eq!(value(&results, 0, 0, 0), Some("t"));
        assert_eq!(value(&results, 0, 0, 1), None);
        assert_eq!(value(&results, 0, 1, 0), None);
        assert_eq!(value(&results, 1, 0, 0), None);
        assert_eq!(value(&results, 2, 0, 0), None);
    }
}
