//! TLS for the agents' own sessions with another node's server, following
//! the same `sslmode` as the libpq connection strings the agent writes
//! (`primary_conninfo`, `pg_rewind --source-server`): an agent that asked
//! the primary in clear text where its walreceiver must use TLS would be
//! refused by a `hostssl`-only `pg_hba.conf`, or, worse, would talk in
//! clear across a network the operator meant to protect.

use crate::{Error, ErrorKind, Result};
use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
use openssl::x509::X509;
use postgres::config::{Host, SslMode as WireMode};
use postgres_openssl::MakeTlsConnector;
use std::fmt;
use std::str::FromStr;

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Allow,
    /// libpq's default: TLS when the server offers it, without checking
    /// who the server is.
    Prefer,
    Require,
    /// TLS, and the server's certificate signed by the root certificate.
    VerifyCa,
    /// The same, and the certificate names the host connected to.
    VerifyFull,
}

impl SslMode {
    pub const NAMES: &'static [&'static str] = &[
        "disable",
        "allow",
        "prefer",
        "require",
        "verify-ca",
        "verify-full",
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// Whether the server's certificate is checked against a root
    /// certificate, which then must be given.
    pub fn verifies(self) -> bool {
        matches!(self, SslMode::VerifyCa | SslMode::VerifyFull)
    }
}

impl FromStr for SslMode {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<SslMode, String> {
        Self::NAMES
            .iter()
            .position(|n| *n == s)
            .map(|i| {
                [
                    SslMode::Disable,
                    SslMode::Allow,
                    SslMode::Prefer,
                    SslMode::Require,
                    SslMode::VerifyCa,
                    SslMode::VerifyFull,
                ][i]
            })
            .ok_or_else(|| format!("'{s}' is not an sslmode ({})", Self::NAMES.join(", ")))
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a session negotiates TLS: the mode, and for the verifying modes
/// the root certificates (PEM) the server's must chain to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    pub mode: SslMode,
    pub root_certs: Option<Vec<u8>>,
}

/// In clear.
impl Default for Tls {
    fn default() -> Tls {
        Tls {
            mode: SslMode::Disable,
            root_certs: None,
        }
    }
}

/// What the session offers the server: nothing (`Disable`), or TLS that
/// may or must happen, through `connector`.
pub(crate) enum Negotiation {
    Clear,
    Tls(WireMode, MakeTlsConnector),
}

impl Tls {
    /// The negotiation for a session to `hosts`. PostgreSQL never speaks
    /// TLS over a unix socket, and libpq does not ask for it there, whatever
    /// `sslmode` says.
    pub(crate) fn negotiation(&self, hosts: &[Host]) -> Result<Negotiation> {
        let unix_only = !hosts.is_empty() && hosts.iter().all(|h| !matches!(h, Host::Tcp(_)));
        let wire = match self.mode {
            _ if unix_only => return Ok(Negotiation::Clear),
            SslMode::Disable => return Ok(Negotiation::Clear),
            // The client library has no "clear first, then TLS": allow
            // asks for TLS first, which a server that accepts clear text
            // may refuse only if it has no certificate, and then it goes on
            // in clear, as allow would.
            SslMode::Allow | SslMode::Prefer => WireMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => WireMode::Require,
        };
        let mut builder = SslConnector::builder(SslMethod::tls_client()).map_err(tls_error)?;
        if self.mode.verifies() {
            let pem = self.root_certs.as_deref().ok_or_else(|| {
                Error::new(
                    ErrorKind::Other,
                    format!("sslmode={} needs a root certificate", self.mode),
                )
            })?;
            let certs = X509::stack_from_pem(pem).map_err(tls_error)?;
            if certs.is_empty() {
                return Err(Error::new(
                    ErrorKind::Other,
                    "the root certificate file holds no PEM certificate",
                ));
            }
            for cert in certs {
                builder.cert_store_mut().add_cert(cert).map_err(tls_error)?;
            }
            builder.set_verify(SslVerifyMode::PEER);
        } else {
            // libpq checks nothing below verify-ca: encryption only.
            builder.set_verify(SslVerifyMode::NONE);
        }
        let mut connector = MakeTlsConnector::new(builder.build());
        let full = self.mode == SslMode::VerifyFull;
        connector.set_callback(move |config, _domain| {
            config.set_verify_hostname(full);
            Ok(())
        });
        Ok(Negotiation::Tls(wire, connector))
    }
}

fn tls_error(e: openssl::error::ErrorStack) -> Error {
    Error::new(ErrorKind::Other, format!("TLS: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_libpq_sslmode_reads_back_as_itself_and_nothing_else_is_one() {
        for name in SslMode::NAMES {
            assert_eq!(name.parse::<SslMode>().unwrap().as_str(), *name);
        }
        assert!("verify_full".parse::<SslMode>().is_err());
        assert!("".parse::<SslMode>().is_err());
    }

    #[test]
    fn a_unix_socket_never_negotiates_tls_and_tcp_follows_the_mode() {
        let unix = [Host::Unix("/run/postgresql".into())];
        let tcp = [Host::Tcp("10.0.0.1".into())];
        let tls = |mode| Tls {
            mode,
            root_certs: None,
        };
        assert!(matches!(
            tls(SslMode::Require).negotiation(&unix).unwrap(),
            Negotiation::Clear
        ));
        assert!(matches!(
            tls(SslMode::Disable).negotiation(&tcp).unwrap(),
            Negotiation::Clear
        ));
        assert!(matches!(
            tls(SslMode::Prefer).negotiation(&tcp).unwrap(),
            Negotiation::Tls(WireMode::Prefer, _)
        ));
        assert!(matches!(
            tls(SslMode::Require).negotiation(&tcp).unwrap(),
            Negotiation::Tls(WireMode::Require, _)
        ));
        let missing = tls(SslMode::VerifyFull).negotiation(&tcp).err().unwrap();
        assert!(missing.reason().contains("root certificate"), "{missing}");
        let garbage = Tls {
            mode: SslMode::VerifyCa,
            root_certs: Some(b"not a certificate".to_vec()),
        };
        assert!(garbage.negotiation(&tcp).is_err());
    }
}
