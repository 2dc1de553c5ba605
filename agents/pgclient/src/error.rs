//! What went wrong talking to a server, in the terms a caller decides on.
//!
//! An agent that concludes "there is no primary" from a failed connection
//! must be sure that nothing answered, not merely that something did not
//! go as planned: a primary refusing a password is still a primary. So
//! every failure says which kind it was, besides the reason an operator
//! reads.

use ocf::OcfError;
use std::fmt;
use std::io;

/// Which kind of failure, for callers that decide on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// Nothing answers there: the connection was refused, the unix socket
    /// does not exist, the host or its network is unreachable, or the host
    /// name does not resolve.
    Unreachable,
    /// No answer within the time budget. `connected` says whether the
    /// server had already accepted the session (authentication done): then
    /// something runs there and is only slow. A hung postmaster leaves it
    /// false, as the kernel accepts the socket connection for it.
    Timeout { connected: bool },
    /// The server answered with an error: `sqlstate` is its SQLSTATE
    /// (`28000`/`28P01` authentication, `3D000` no such database, `53300`
    /// too many connections, `57P03` starting up or shutting down, `57014`
    /// the statement timeout...), `message` its primary message.
    Server { sqlstate: String, message: String },
    /// Anything else: a connection closed midway, a protocol error, the
    /// identity switch refused, a configuration the client rejects.
    Other,
}

/// A failed connection or query: its kind and the reason an operator reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    reason: String,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn new(kind: ErrorKind, reason: impl Into<String>) -> Error {
        Error {
            kind,
            reason: reason.into(),
        }
    }

    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The server's SQLSTATE, when the server answered with an error.
    pub fn sqlstate(&self) -> Option<&str> {
        match &self.kind {
            ErrorKind::Server { sqlstate, .. } => Some(sqlstate),
            _ => None,
        }
    }

    /// Whether the server refused to let the client in: SQLSTATE class 28
    /// (a wrong password, no pg_hba.conf entry, peer authentication
    /// failed), or the server asked for a password the client does not
    /// have (the client library gives up before answering). Something
    /// runs there and would answer with the right credentials: not an
    /// absence.
    pub fn is_authentication(&self) -> bool {
        match &self.kind {
            ErrorKind::Server { sqlstate, .. } => sqlstate.starts_with("28"),
            ErrorKind::Other => self.reason.ends_with("password missing"),
            _ => false,
        }
    }

    /// Prefixes the reason with what was being done, keeping the kind.
    pub fn context(self, what: impl fmt::Display) -> Error {
        Error {
            kind: self.kind,
            reason: format!("{what}: {}", self.reason),
        }
    }

    /// From the client library's error, prefixed with the step that failed
    /// (`cannot connect`, `query failed`).
    pub(crate) fn from_client(step: &str, e: &postgres::Error) -> Error {
        Error::new(classify(e), format!("{step}: {}", describe(e)))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for Error {}

/// An agent action that used `?` on a query fails with OCF_ERR_GENERIC and
/// the reason; callers that must tell the kinds apart match on
/// [`Error::kind`] before converting.
impl From<Error> for OcfError {
    fn from(e: Error) -> OcfError {
        OcfError::generic(e.reason)
    }
}

/// The kind of a client library error. A timeout found here is one of the
/// connection (the client library's `connect_timeout`, or the kernel's
/// `ETIMEDOUT`), so before a session.
pub fn classify(e: &postgres::Error) -> ErrorKind {
    if let Some(db) = e.as_db_error() {
        return ErrorKind::Server {
            sqlstate: db.code().code().to_string(),
            message: db.message().to_string(),
        };
    }
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        if let Some(io) = inner.downcast_ref::<io::Error>() {
            return classify_io(io);
        }
        source = inner.source();
    }
    ErrorKind::Other
}

fn classify_io(e: &io::Error) -> ErrorKind {
    use nix::libc;
    if let Some(errno) = e.raw_os_error() {
        return match errno {
            // ENOENT: no socket file, so no server, in a unix socket directory.
            libc::ECONNREFUSED
            | libc::ENOENT
            | libc::EHOSTUNREACH
            | libc::ENETUNREACH
            | libc::EHOSTDOWN
            | libc::ENETDOWN => ErrorKind::Unreachable,
            libc::ETIMEDOUT => ErrorKind::Timeout { connected: false },
            _ => ErrorKind::Other,
        };
    }
    let text = e.to_string();
    match e.kind() {
        io::ErrorKind::TimedOut => ErrorKind::Timeout { connected: false },
        io::ErrorKind::ConnectionRefused | io::ErrorKind::NotFound => ErrorKind::Unreachable,
        // getaddrinfo's failures carry no errno: the Rust standard library
        // (1.75 to 1.95 at least) reports them under this prefix, and
        // tokio-postgres 0.7 with its own words when a name resolves to no
        // address at all.
        _ if text.starts_with("failed to lookup address information")
            || text == "could not resolve any addresses" =>
        {
            ErrorKind::Unreachable
        }
        _ => ErrorKind::Other,
    }
}

/// The server's own message where there is one (`FATAL: the database system
/// is starting up`), else the client library's with its causes.
pub fn describe(e: &postgres::Error) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use ocf::Status;

    #[test]
    fn errno_values_of_a_connect_that_found_nobody_are_unreachable() {
        use nix::libc;
        for errno in [
            libc::ECONNREFUSED,
            libc::ENOENT,
            libc::EHOSTUNREACH,
            libc::ENETUNREACH,
        ] {
            let e = io::Error::from_raw_os_error(errno);
            assert_eq!(classify_io(&e), ErrorKind::Unreachable, "{e}");
        }
        let e = io::Error::from_raw_os_error(libc::ETIMEDOUT);
        assert_eq!(classify_io(&e), ErrorKind::Timeout { connected: false });
        // Someone is there, or the question is wrong: not "nobody".
        for errno in [
            libc::ECONNRESET,
            libc::EACCES,
            libc::EPIPE,
            libc::EADDRNOTAVAIL,
        ] {
            let e = io::Error::from_raw_os_error(errno);
            assert_eq!(classify_io(&e), ErrorKind::Other, "{e}");
        }
    }

    #[test]
    fn a_name_that_does_not_resolve_is_unreachable() {
        // The standard library's getaddrinfo failure, as it words it (no
        // errno); resolving a real name would leave the loopback.
        let e = io::Error::other("failed to lookup address information: Name or service not known");
        assert_eq!(classify_io(&e), ErrorKind::Unreachable);
        let e = io::Error::new(
            io::ErrorKind::InvalidInput,
            "could not resolve any addresses",
        );
        assert_eq!(classify_io(&e), ErrorKind::Unreachable);
        let e = io::Error::new(io::ErrorKind::TimedOut, "connection timed out");
        assert_eq!(classify_io(&e), ErrorKind::Timeout { connected: false });
        let e = io::Error::new(io::ErrorKind::UnexpectedEof, "early eof");
        assert_eq!(classify_io(&e), ErrorKind::Other);
    }

    #[test]
    fn refused_logins_are_authentication_failures_and_absence_is_not() {
        let server = |code: &str| {
            Error::new(
                ErrorKind::Server {
                    sqlstate: code.into(),
                    message: "m".into(),
                },
                "cannot connect: FATAL: m",
            )
        };
        assert!(server("28P01").is_authentication());
        assert!(server("28000").is_authentication());
        assert!(!server("3D000").is_authentication());
        assert!(!server("57P03").is_authentication());
        let missing = Error::new(
            ErrorKind::Other,
            "cannot connect: invalid configuration: password missing",
        );
        assert!(missing.is_authentication());
        assert!(!Error::new(ErrorKind::Unreachable, "password missing").is_authentication());
        assert!(!Error::new(ErrorKind::Other, "connection closed").is_authentication());
    }

    #[test]
    fn an_agent_sees_a_generic_error_with_the_reason_and_the_context() {
        let e = Error::new(
            ErrorKind::Server {
                sqlstate: "3D000".into(),
                message: "database \"x\" does not exist".into(),
            },
            "cannot connect: FATAL: database \"x\" does not exist",
        )
        .context("asking the primary");
        assert_eq!(e.sqlstate(), Some("3D000"));
        let ocf: OcfError = e.into();
        assert_eq!(ocf.status(), Status::ErrGeneric);
        assert_eq!(
            ocf.reason(),
            "asking the primary: cannot connect: FATAL: database \"x\" does not exist"
        );
    }
}
