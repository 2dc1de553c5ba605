//! The Slony-I cluster name, validated once: it is written into slonik
//! scripts, slon's command line and SQL (as the schema `_<name>`).

use crate::quote;
use ocf::{OcfError, Result};
use std::fmt;

/// Every word slonik 2.2.11's scanner turns into a keyword, whatever its
/// case: `cluster name = set;` is a syntax error. `include` and `define`
/// start slonik's file inclusion and macros. Checked against
/// /usr/bin/slonik (see docs/slony-facts.md).
const SLONIK_KEYWORDS: &[&str] = &[
    "add",
    "admin",
    "all",
    "backup",
    "client",
    "clone",
    "cluster",
    "comment",
    "config",
    "confirmed",
    "conninfo",
    "connretry",
    "copy",
    "create",
    "date",
    "define",
    "drop",
    "echo",
    "error",
    "event",
    "execute",
    "exit",
    "failover",
    "false",
    "filename",
    "finish",
    "for",
    "format",
    "forward",
    "full",
    "fully",
    "functions",
    "id",
    "include",
    "init",
    "key",
    "listen",
    "lock",
    "log",
    "merge",
    "move",
    "name",
    "new",
    "no",
    "node",
    "off",
    "old",
    "omit",
    "on",
    "only",
    "origin",
    "path",
    "prepare",
    "provider",
    "qualified",
    "receiver",
    "repair",
    "restart",
    "resubscribe",
    "script",
    "seconds",
    "sequence",
    "sequences",
    "server",
    "set",
    "sleep",
    "sql",
    "store",
    "subscribe",
    "success",
    "switch",
    "sync",
    "table",
    "tables",
    "timeout",
    "true",
    "try",
    "uninstall",
    "unlock",
    "unsubscribe",
    "update",
    "wait",
    "yes",
];

/// A Slony-I cluster name that slonik parses as a name and PostgreSQL keeps
/// whole as the schema `_<name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterName(String);

impl ClusterName {
    /// slonik takes the name as a bare identifier (`cluster name = tusk;`):
    /// an ASCII letter or `_`, then letters, digits, `_` or `$`, and no
    /// slonik keyword. The schema `_<name>` must fit PostgreSQL's 63 bytes.
    /// slonik and slon keep the case (`Tusk` is the schema `"_Tusk"`).
    pub fn parse(name: &str) -> Result<ClusterName> {
        let bad =
            |why: &str| OcfError::configured(format!("the Slony cluster name {name:?} {why}"));
        let mut chars = name.chars();
        match chars.next() {
            None => return Err(bad("is empty")),
            Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
            Some(_) => return Err(bad("must start with an ASCII letter or _")),
        }
        if !chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$') {
            return Err(bad("may hold only ASCII letters, digits, _ and $"));
        }
        if name.len() + 1 > quote::MAX_IDENTIFIER_BYTES {
            return Err(bad(&format!(
                "is longer than {} bytes",
                quote::MAX_IDENTIFIER_BYTES - 1
            )));
        }
        if SLONIK_KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(name)) {
            return Err(bad("is a slonik keyword"));
        }
        Ok(ClusterName(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The schema Slony-I installs its tables and functions in: `_<name>`.
    pub fn schema(&self) -> String {
        format!("_{}", self.0)
    }

    /// [`schema`](Self::schema) as a quoted SQL identifier.
    pub fn schema_sql(&self) -> String {
        quote::identifier(&self.schema()).expect("a validated cluster name is a valid SQL name")
    }
}

impl fmt::Display for ClusterName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ocf::Status;

    #[test]
    fn names_slonik_parses_are_accepted_with_their_case() {
        for ok in ["tusk", "Tusk_A$1", "_x", "x_include", "node1", "a"] {
            let c = ClusterName::parse(ok).unwrap();
            assert_eq!(c.as_str(), ok);
            assert_eq!(c.schema(), format!("_{ok}"));
        }
        assert_eq!(
            ClusterName::parse("Tusk").unwrap().schema_sql(),
            "\"_Tusk\""
        );
    }

    #[test]
    fn names_that_would_reach_a_script_or_sql_unparsed_are_refused() {
        for bad in [
            "", "1abc", "a b", "a\"b", "a'b", "a;b", "a-b", "ä", "a\0", "@x", "$x",
        ] {
            let e = ClusterName::parse(bad).unwrap_err();
            assert_eq!(e.status(), Status::ErrConfigured, "{bad:?}");
            assert!(e.reason().contains("Slony cluster name"), "{}", e.reason());
        }
    }

    #[test]
    fn slonik_keywords_are_refused_in_any_case() {
        for kw in ["set", "SET", "Node", "yes", "include", "define", "failover"] {
            let e = ClusterName::parse(kw).unwrap_err();
            assert!(e.reason().ends_with("is a slonik keyword"), "{kw}");
        }
    }

    #[test]
    fn the_schema_must_fit_postgresql_names() {
        assert!(ClusterName::parse(&"c".repeat(62)).is_ok());
        assert!(ClusterName::parse(&"c".repeat(63)).is_err());
    }
}
