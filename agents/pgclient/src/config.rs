//! A session's settings: the client library's own, and how it negotiates
//! TLS ([`Tls`]), which the client library leaves to a connector.

use crate::tls::Tls;
use std::ops::{Deref, DerefMut};
use std::str::FromStr;

/// The client library's settings (reached through `Deref`: `host`,
/// `port`, `user`, ...) and TLS. Sessions are in clear unless [`Config::tls`]
/// says otherwise, as every agent's were before the postgresql agent's
/// sessions with a primary followed its `sslmode`.
#[derive(Debug, Clone, Default)]
pub struct Config {
    pg: postgres::Config,
    tls: Tls,
}

impl Config {
    pub fn new() -> Config {
        Config::default()
    }

    pub fn tls(&mut self, tls: Tls) -> &mut Config {
        self.tls = tls;
        self
    }

    pub fn get_tls(&self) -> &Tls {
        &self.tls
    }
}

impl Deref for Config {
    type Target = postgres::Config;
    fn deref(&self) -> &postgres::Config {
        &self.pg
    }
}

impl DerefMut for Config {
    fn deref_mut(&mut self) -> &mut postgres::Config {
        &mut self.pg
    }
}

/// A connection string as the client library reads it; in clear.
impl FromStr for Config {
    type Err = postgres::Error;
    fn from_str(s: &str) -> Result<Config, postgres::Error> {
        Ok(Config {
            pg: s.parse()?,
            tls: Tls::default(),
        })
    }
}
