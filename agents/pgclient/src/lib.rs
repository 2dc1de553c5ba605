//! The PostgreSQL client side of the tusk agents: one SQL round trip that
//! answers before the action's deadline, made as the server's OS user, and
//! the connection strings and password files of libpq.
//!
//! The postgresql agent asks its server through it; the pgpool agent asks
//! through pgpool, and the slon agent its node's database. It lives apart
//! from `ocf` so that an agent that never speaks SQL does not carry the
//! client library.
//!
//! # Asking a server
//!
//! ```no_run
//! use nix::unistd::{Gid, Uid};
//! # fn in_recovery(deadline: &ocf::Deadline) -> ocf::Result<bool> {
//! let mut pg = pgclient::Config::new();
//! pg.host_path("/var/run/postgresql")
//!     .port(5432)
//!     .user("postgres")
//!     .dbname("postgres");
//! // The postmaster's uid and gid, as /proc shows them.
//! let server_account = (Uid::from_raw(110), Gid::from_raw(118));
//! let sql = "SELECT pg_is_in_recovery()";
//! let results = pgclient::query(pg, Some(server_account), deadline, sql)?;
//! Ok(pgclient::value(&results, 0, 0, 0) == Some("t"))
//! # }
//! ```
//!
//! - **As the server's OS user.** Local connections usually authenticate by
//!   peer: the server asks the kernel who connected. The agent runs as
//!   root, so for the length of the connection it takes on the effective
//!   uid and gid it is given ([`Identity`]), typically the postmaster's
//!   own, read from /proc: no user lookup, no fork of `psql`, which keeps
//!   the monitor cheap.
//! - **Under a deadline.** A hung server accepts the socket connection (the
//!   kernel queues it) and then never answers; the client library's
//!   connect timeout covers the socket alone. The round trip therefore runs
//!   on a thread, and [`query()`] stops waiting for it when the action's
//!   [`ocf::Deadline`] passes, whatever the server does. The session also
//!   gets a `statement_timeout` of the time left.
//! - **Failures that say what they were.** An [`Error`] is [`ErrorKind::Unreachable`]
//!   (nothing listens), [`ErrorKind::Timeout`] (no answer in time),
//!   [`ErrorKind::Server`] (the server answered with an error, with its
//!   SQLSTATE) or [`ErrorKind::Other`]. A decision such as "there is no
//!   primary" must rest on the first two only: a server that refuses a
//!   password is still there. With `?` in an action, an error becomes
//!   `OCF_ERR_GENERIC` with its reason.
//!
//! # Connection strings
//!
//! Programs configured with a libpq connection string (`primary_conninfo`,
//! `pg_rewind --source-server`) get one built by [`Conninfo`]: keys fixed in
//! the code, values quoted wherever libpq would otherwise split them (white
//! space) or read them differently (`'`, `\`), so that no value an operator
//! typed can end early and add keys of its own.
//!
//! # SQL text
//!
//! Where a value cannot be a query parameter (the simple query protocol,
//! a schema name), [`quote::identifier`] and [`quote::literal`] write it.
//!
//! # Password files
//!
//! [`Passfile`] reads a `.pgpass`-format file safely (no symbolic link, no
//! FIFO, 64 KiB at most, its content never in an error) and picks a
//! password the way libpq does, for the agent's own connections.

pub mod config;
pub mod conninfo;
pub mod error;
pub mod identity;
pub mod passfile;
pub mod query;
pub mod quote;
pub mod slony;
pub mod tls;

pub use config::Config;
pub use conninfo::Conninfo;
pub use error::{classify, describe, Error, ErrorKind, Result};
pub use identity::Identity;
pub use passfile::Passfile;
pub use postgres::config::Host;
pub use query::{query, query_each, value, Rows};
pub use tls::{SslMode, Tls};
