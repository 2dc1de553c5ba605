//! libpq connection strings (`host=... user=...`) for the programs that
//! take one: `primary_conninfo`, `pg_rewind --source-server`, pgpool's and
//! Slony's configuration.
//!
//! libpq splits the string at unquoted white space (C's `isspace()`:
//! space, tab, newline, carriage return, vertical tab, form feed), takes a
//! value that starts with `'` as quoted up to the next unescaped `'`, and
//! drops the backslash of `\x` everywhere. A value written unquoted from
//! operator input could therefore end early and smuggle in keys of its own
//! (`x password=...`), so every value that is not plainly safe is quoted.

use std::borrow::Cow;
use std::fmt;

/// An ordered list of libpq keywords and their values.
///
/// Keys are fixed identifiers written in the agent's code (`host`,
/// `passfile`), never operator input; values are anything, quoted as
/// needed when the string is built with `to_string()`.
///
/// A value cannot hold a NUL byte: libpq would cut it there. A string that
/// holds one is refused by `exec` (as `primary_conninfo` on a command line
/// or `--source-server`), so it fails instead of connecting elsewhere.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conninfo {
    pairs: Vec<(&'static str, String)>,
}

impl Conninfo {
    pub fn new() -> Conninfo {
        Conninfo::default()
    }

    /// Sets `key` to `value`. A key set again keeps its place and takes the
    /// new value (libpq would take the last one anyway).
    pub fn set(&mut self, key: &'static str, value: impl Into<String>) -> &mut Conninfo {
        debug_assert!(
            !key.is_empty() && key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "libpq keyword {key:?}"
        );
        let value = value.into();
        match self.pairs.iter_mut().find(|(k, _)| *k == key) {
            Some(pair) => pair.1 = value,
            None => self.pairs.push((key, value)),
        }
        self
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The keys and values in the order they were first set.
    pub fn pairs(&self) -> impl Iterator<Item = (&'static str, &str)> {
        self.pairs.iter().map(|(k, v)| (*k, v.as_str()))
    }
}

/// `key=value` pairs separated by one space, values quoted as needed.
impl fmt::Display for Conninfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (key, value)) in self.pairs.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{key}={}", quote(value))?;
        }
        Ok(())
    }
}

/// A connection-string value as libpq reads it back: as it is when every
/// byte is printable ASCII other than `'` and `\`, otherwise in single
/// quotes with `\` and `'` escaped by a backslash.
///
/// libpq needs quotes only for an empty value, white space, `'` and `\`;
/// quoting every other byte outside printable ASCII as well keeps clear of
/// any `isspace()` that a locale may extend, and of parsers (tokio-postgres)
/// that split at Unicode white space.
pub fn quote(value: &str) -> Cow<'_, str> {
    let plain = |b: u8| b.is_ascii_graphic() && b != b'\'' && b != b'\\';
    if !value.is_empty() && value.bytes().all(plain) {
        return Cow::Borrowed(value);
    }
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('\'');
    for c in value.chars() {
        if c == '\'' || c == '\\' {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push('\'');
    Cow::Owned(quoted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    /// Values an operator could type, each breaking a naive connection
    /// string in its own way.
    fn nasty() -> Vec<String> {
        let mut values: Vec<String> = [
            "",
            " ",
            "a b",
            "a\tb",
            "a\nb",
            "a\rb",
            "a\x0bb",
            "a\x0cb",
            "'",
            "''",
            "\\",
            "\\'",
            "it's",
            "a\\",
            "trailing ",
            " leading",
            "host=evil",
            "x host=evil",
            "a' password='x",
            "a\\' password=\\'x",
            "' sslmode='disable",
            "=",
            "a=b",
            "postgresql://evil/db",
            "h\u{e9}llo w\u{f6}rld",
            "\u{a0}nbsp\u{a0}",
            "em\u{2003}space",
            "\u{85}next-line",
            "/var/run/postgresql",
            "10.0.0.1,10.0.0.2",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        // Every ASCII byte but NUL, alone and inside a word.
        for b in 1u8..0x80 {
            let c = b as char;
            values.push(c.to_string());
            values.push(format!("a{c}b"));
        }
        values
    }

    #[test]
    fn plain_values_stay_unquoted_and_the_rest_is_quoted() {
        assert_eq!(quote("10.0.0.1"), "10.0.0.1");
        assert_eq!(quote("/var/run/postgresql"), "/var/run/postgresql");
        assert_eq!(quote("it's me"), r"'it\'s me'");
        assert_eq!(quote(r"C:\x"), r"'C:\\x'");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("a\tb"), "'a\tb'");
        assert_eq!(quote("\u{e9}"), "'\u{e9}'");
    }

    #[test]
    fn keys_keep_their_order_and_a_key_set_again_keeps_its_place() {
        let mut c = Conninfo::new();
        c.set("host", "h").set("user", "u").set("host", "it's");
        assert_eq!(c.to_string(), r"host='it\'s' user=u");
        assert_eq!(c.get("host"), Some("it's"));
        assert_eq!(c.get("port"), None);
        assert_eq!(
            c.pairs().collect::<Vec<_>>(),
            [("host", "it's"), ("user", "u")]
        );
        assert_eq!(Conninfo::new().to_string(), "");
    }

    #[test]
    fn every_value_comes_back_whole_through_tokio_postgres() {
        for v in nasty() {
            let mut c = Conninfo::new();
            c.set("host", "h")
                .set("user", v.as_str())
                .set("dbname", v.as_str())
                .set("password", v.as_str())
                .set("application_name", v.as_str())
                .set("options", v.as_str());
            let s = c.to_string();
            let pg = postgres::Config::from_str(&s).unwrap_or_else(|e| panic!("{s:?}: {e}"));
            // An injected host would come as a second one.
            assert_eq!(
                pg.get_hosts(),
                [postgres::config::Host::Tcp("h".into())],
                "{s:?}"
            );
            assert_eq!(pg.get_user(), Some(v.as_str()), "{s:?}");
            assert_eq!(pg.get_dbname(), Some(v.as_str()), "{s:?}");
            assert_eq!(pg.get_password(), Some(v.as_bytes()), "{s:?}");
            assert_eq!(pg.get_application_name(), Some(v.as_str()), "{s:?}");
            assert_eq!(pg.get_options(), Some(v.as_str()), "{s:?}");
        }
    }

    #[test]
    fn every_value_comes_back_whole_through_libpq() {
        for v in nasty() {
            let mut c = Conninfo::new();
            c.set("host", v.as_str())
                .set("port", "5433")
                .set("user", v.as_str())
                .set("dbname", "postgres")
                .set("application_name", v.as_str())
                .set("passfile", v.as_str());
            let s = c.to_string();
            let mut parsed = libpq::parse(&s).unwrap_or_else(|e| panic!("{s:?}: {e}"));
            parsed.sort();
            let mut wanted: Vec<(String, Vec<u8>)> = c
                .pairs()
                .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
                .collect();
            wanted.sort();
            // The same keys, no other, each with its whole value.
            assert_eq!(parsed, wanted, "{s:?}");
        }
    }

    /// libpq's own parser, `PQconninfoParse`, from the libpq5 package that
    /// psql and PostgreSQL's own tools use.
    mod libpq {
        use nix::libc::{c_char, c_int, c_void, dlopen, dlsym, RTLD_NOW};
        use std::ffi::{CStr, CString};

        #[repr(C)]
        struct ConninfoOption {
            keyword: *const c_char,
            envvar: *const c_char,
            compiled: *const c_char,
            val: *const c_char,
            label: *const c_char,
            dispchar: *const c_char,
            dispsize: c_int,
        }

        type Parse = unsafe extern "C" fn(*const c_char, *mut *mut c_char) -> *mut ConninfoOption;
        type FreeOptions = unsafe extern "C" fn(*mut ConninfoOption);
        type FreeMem = unsafe extern "C" fn(*mut c_void);

        /// The keywords given a value, and the values, as libpq reads them.
        pub fn parse(conninfo: &str) -> Result<Vec<(String, Vec<u8>)>, String> {
            let conninfo = CString::new(conninfo).unwrap();
            // SAFETY: the libpq5 ABI (stable since PostgreSQL 9.x): the
            // options array ends with a NULL keyword, and what libpq
            // allocates goes back to libpq.
            unsafe {
                let lib = dlopen(b"libpq.so.5\0".as_ptr().cast(), RTLD_NOW);
                assert!(!lib.is_null(), "libpq.so.5 (install libpq5)");
                let symbol = |name: &[u8]| {
                    let name = CStr::from_bytes_with_nul(name).unwrap();
                    let f = dlsym(lib, name.as_ptr());
                    assert!(!f.is_null(), "{name:?} in libpq.so.5");
                    f
                };
                let parse: Parse = std::mem::transmute(symbol(b"PQconninfoParse\0"));
                let free_options: FreeOptions = std::mem::transmute(symbol(b"PQconninfoFree\0"));
                let free_mem: FreeMem = std::mem::transmute(symbol(b"PQfreemem\0"));
                let mut error = std::ptr::null_mut();
                let options = parse(conninfo.as_ptr(), &mut error);
                if options.is_null() {
                    let message = CStr::from_ptr(error).to_string_lossy().into_owned();
                    free_mem(error.cast());
                    return Err(message);
                }
                let mut set = Vec::new();
                let mut option = options;
                while !(*option).keyword.is_null() {
                    if !(*option).val.is_null() {
                        set.push((
                            CStr::from_ptr((*option).keyword)
                                .to_string_lossy()
                                .into_owned(),
                            CStr::from_ptr((*option).val).to_bytes().to_vec(),
                        ));
                    }
                    option = option.add(1);
                }
                free_options(options);
                Ok(set)
            }
        }
    }
}
