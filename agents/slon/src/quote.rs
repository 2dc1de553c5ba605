//! slonik's string literals. SQL names and strings are quoted by
//! `pgclient::quote`, libpq conninfo values by `pgclient::conninfo`.

use ocf::{OcfError, Result};

/// `value` as a slonik string literal. slonik 2.2's scanner reads a
/// literal from `'` to the next lone `'`, a doubled `''` standing for one
/// quote and everything else (backslashes, `#`, `@`, newlines) kept as it
/// is; the text reaches slonik as a C string, so a NUL is refused.
pub fn slonik_literal(value: &str) -> Result<String> {
    if value.contains('\0') {
        return Err(OcfError::configured(
            "a slonik string cannot hold a NUL byte",
        ));
    }
    Ok(format!("'{}'", value.replace('\'', "''")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slonik_literals_double_quotes_and_keep_the_rest() {
        assert_eq!(slonik_literal("node 1").unwrap(), "'node 1'");
        assert_eq!(slonik_literal("it's").unwrap(), "'it''s'");
        assert_eq!(
            slonik_literal("dbname='x' host=/a\\b").unwrap(),
            "'dbname=''x'' host=/a\\b'"
        );
        assert_eq!(slonik_literal("'; drop").unwrap(), "'''; drop'");
        assert!(slonik_literal("\0").is_err());
    }
}
