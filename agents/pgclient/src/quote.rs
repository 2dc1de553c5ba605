//! SQL text built from values an operator gives: names always quoted as
//! identifiers, strings as literals that mean the same whatever the
//! server's settings. For the statements that cannot take parameters (the
//! simple query protocol, a schema in a function call, DDL).

use ocf::{OcfError, Result};

/// PostgreSQL keeps the first 63 bytes of a longer name (NAMEDATALEN - 1)
/// and only says so in a NOTICE, so two long names could meet as one.
pub const MAX_IDENTIFIER_BYTES: usize = 63;

/// `name` as a quoted SQL identifier, always quoted, so that case and every
/// character are kept: `_Tusk` stays `"_Tusk"`, a `"` is doubled.
///
/// Refused: an empty name, a NUL byte (the wire protocol ends the query
/// text there) and a name longer than PostgreSQL keeps.
pub fn identifier(name: &str) -> Result<String> {
    if name.is_empty() {
        return Err(OcfError::configured("an SQL name cannot be empty"));
    }
    if name.contains('\0') {
        return Err(OcfError::configured("an SQL name cannot hold a NUL byte"));
    }
    if name.len() > MAX_IDENTIFIER_BYTES {
        return Err(OcfError::configured(format!(
            "an SQL name is at most {MAX_IDENTIFIER_BYTES} bytes, not {}",
            name.len()
        )));
    }
    Ok(format!("\"{}\"", name.replace('"', "\"\"")))
}

/// `value` as an SQL string literal that means the same whatever
/// `standard_conforming_strings` says: the `E'...'` form, in which a
/// backslash is always an escape, with `\` and `'` doubled.
pub fn literal(value: &str) -> Result<String> {
    if value.contains('\0') {
        return Err(OcfError::configured("an SQL string cannot hold a NUL byte"));
    }
    Ok(format!(
        "E'{}'",
        value.replace('\\', "\\\\").replace('\'', "''")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ocf::Status;

    #[test]
    fn identifiers_are_always_quoted_and_keep_their_case() {
        assert_eq!(identifier("_tusk").unwrap(), "\"_tusk\"");
        assert_eq!(identifier("_Tusk").unwrap(), "\"_Tusk\"");
        assert_eq!(identifier("_a b").unwrap(), "\"_a b\"");
        assert_eq!(identifier("_x$1").unwrap(), "\"_x$1\"");
    }

    #[test]
    fn a_double_quote_in_an_identifier_is_doubled() {
        assert_eq!(identifier("a\"b").unwrap(), "\"a\"\"b\"");
        assert_eq!(
            identifier("_x\"; drop schema public; --").unwrap(),
            "\"_x\"\"; drop schema public; --\""
        );
        assert_eq!(identifier("\"").unwrap(), "\"\"\"\"");
    }

    #[test]
    fn identifiers_postgresql_would_change_are_refused() {
        for bad in ["", "a\0b"] {
            assert_eq!(
                identifier(bad).unwrap_err().status(),
                Status::ErrConfigured,
                "{bad:?}"
            );
        }
        let longest = "x".repeat(MAX_IDENTIFIER_BYTES);
        assert!(identifier(&longest).is_ok());
        assert!(identifier(&format!("{longest}x")).is_err());
        // Bytes, not characters: 32 two-byte letters are 64 bytes.
        assert!(identifier(&"é".repeat(32)).is_err());
    }

    #[test]
    fn literals_escape_quotes_and_backslashes() {
        assert_eq!(literal("_tusk").unwrap(), "E'_tusk'");
        assert_eq!(literal("it's").unwrap(), "E'it''s'");
        assert_eq!(literal("a\\'b").unwrap(), "E'a\\\\''b'");
        assert!(literal("a\0").is_err());
    }
}
