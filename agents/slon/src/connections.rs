//! slon's connections to this node's database, as pg_stat_activity shows
//! them, and the slon processes of this host at their other end.
//!
//! Every connection slon 2.2 makes names itself `slon.<thread>`; the
//! node's own slon has `slon.local_listen` (the lock), `slon.local_sync`,
//! `slon.local_monitor`, `slon.local_cleanup` and one
//! `slon.remoteWorkerThread_M` per other node; other nodes' slons connect
//! as `slon.node_N_listen` and `slon.origin_N_provider_M`.

use crate::database::NodeDb;
use crate::peer::{self, Client};
use ocf::process::ProcInfo;
use ocf::Deadline;
use std::net::IpAddr;

/// One slon connection to this database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub backend_pid: i32,
    pub application_name: String,
    pub client: Client,
}

/// The slon connections to this node's database, and the server's port.
pub fn read(db: &NodeDb, deadline: &Deadline) -> pgclient::Result<(Vec<Connection>, u16)> {
    let results = db.query(
        deadline,
        "SELECT pid, application_name, host(client_addr), client_port, current_setting('port') \
         FROM pg_catalog.pg_stat_activity \
         WHERE datname = current_database() AND application_name LIKE 'slon.%'",
    )?;
    let rows = results.into_iter().next().unwrap_or_default();
    let port = rows
        .first()
        .and_then(|r| r.get(4)?.as_deref()?.parse().ok())
        .unwrap_or(5432);
    let connections = rows
        .iter()
        .filter_map(|r| {
            let text = |i: usize| r.get(i).and_then(|v| v.as_deref());
            Some(Connection {
                backend_pid: text(0)?.parse().ok()?,
                application_name: text(1)?.to_string(),
                client: client(text(2), text(3).and_then(|p| p.parse().ok())),
            })
        })
        .collect();
    Ok((connections, port))
}

/// `client_port` is -1 for a unix socket and NULL when hidden or absent.
pub fn client(addr: Option<&str>, port: Option<i32>) -> Client {
    match (addr.and_then(|a| a.parse::<IpAddr>().ok()), port) {
        (_, Some(-1)) => Client::UnixSocket,
        (Some(addr), Some(port)) => match u16::try_from(port) {
            Ok(port) => Client::Tcp { addr, port },
            Err(_) => Client::Hidden,
        },
        _ => Client::Hidden,
    }
}

/// The backends whose client is one of `processes` (read through their
/// descriptors, not a scan of every process).
pub fn backends_of(
    connections: &[Connection],
    server_port: u16,
    processes: &[ProcInfo],
) -> Vec<i32> {
    connections
        .iter()
        .filter(|c| {
            processes.iter().any(|p| {
                peer::is_client(c.backend_pid, &c.client, server_port, p.pid).unwrap_or(false)
            })
        })
        .map(|c| c.backend_pid)
        .collect()
}

/// `1, 2, 3` for SQL's `IN (...)`; the values are numbers.
pub fn sql_list(pids: &[i32]) -> String {
    pids.iter()
        .map(i32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_are_read_from_address_and_port() {
        assert_eq!(client(None, Some(-1)), Client::UnixSocket);
        assert_eq!(
            client(Some("10.0.0.7"), Some(40312)),
            Client::Tcp {
                addr: "10.0.0.7".parse().unwrap(),
                port: 40312
            }
        );
        assert_eq!(client(None, None), Client::Hidden);
        assert_eq!(client(Some("10.0.0.7"), None), Client::Hidden);
        assert_eq!(client(Some("x"), Some(5)), Client::Hidden);
    }

    #[test]
    fn pid_lists_are_numbers() {
        assert_eq!(sql_list(&[1, 22, 333]), "1, 22, 333");
        assert_eq!(sql_list(&[]), "");
    }
}
