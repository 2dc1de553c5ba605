//! Passwords from a libpq password file (`.pgpass` format), picked as libpq
//! picks them, for the connections an agent makes itself: libpq's own
//! `passfile` keyword serves the programs that use libpq (the WAL receiver,
//! pg_rewind), but the agent's client library does not read the file.
//!
//! The file is usually the service account's: as root the agent opens it
//! without following a symbolic link and without blocking on a FIFO, reads
//! a regular file only and at most [`MAX_SIZE`] bytes, and never repeats
//! its content in an error.

use std::fmt;
use std::io;
use std::path::Path;

/// The largest password file read: a few hundred lines is already many.
pub const MAX_SIZE: u64 = 64 * 1024;

/// The unix socket directory that Debian's libpq 15 was built with
/// (`DEFAULT_PGSOCKET_DIR`): a password file's `localhost` stands for it.
pub const DEFAULT_SOCKET_DIR: &str = "/var/run/postgresql";

/// The lines of a password file that can match (no comment, no empty line).
#[derive(Clone, Default)]
pub struct Passfile {
    lines: Vec<Vec<u8>>,
}

/// Passwords stay out of logs, even a debug print's.
impl fmt::Debug for Passfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Passfile({} lines)", self.lines.len())
    }
}

impl Passfile {
    /// Reads the file at `path` safely. The error names what is wrong with
    /// the file, never what it holds.
    pub fn read(path: &Path) -> io::Result<Passfile> {
        let file = ocf::fs::read_bounded(path, MAX_SIZE as usize)?
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "does not exist"))?;
        // Refused rather than cut: a partial last line could match with a
        // truncated password.
        if file.truncated {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("is larger than {} KiB", MAX_SIZE / 1024),
            ));
        }
        let content = file.bytes;
        Ok(Passfile::parse(&content))
    }

    /// Lines as libpq reads them: a line starting with `#` is a comment,
    /// trailing carriage returns and newlines go, and a NUL byte ends the
    /// line (libpq reads C strings).
    pub fn parse(content: &[u8]) -> Passfile {
        let lines = content
            .split(|&b| b == b'\n')
            .filter(|line| line.first() != Some(&b'#'))
            .map(|line| {
                let line = line.split(|&b| b == 0).next().unwrap_or_default();
                let end = line
                    .iter()
                    .rposition(|&b| b != b'\r')
                    .map_or(0, |last| last + 1);
                line[..end].to_vec()
            })
            .filter(|line| !line.is_empty())
            .collect();
        Passfile { lines }
    }

    /// The password libpq would send to `host` (a name, an address or a
    /// unix socket directory), `port`, `dbname` as `user`: that of the
    /// first matching line.
    pub fn password(&self, host: &str, port: u16, dbname: &str, user: &str) -> Option<Vec<u8>> {
        self.password_for_any(host, port, &[dbname], user)
    }

    /// The password of the first line that matches any of `dbnames`: a
    /// line written for the WAL receiver (database `replication`) also
    /// serves an agent's own query to the same server, without the
    /// operator writing the password twice.
    pub fn password_for_any(
        &self,
        host: &str,
        port: u16,
        dbnames: &[&str],
        user: &str,
    ) -> Option<Vec<u8>> {
        // 'localhost' stands for a connection over the default socket
        // directory too; any other directory matches by its name.
        let host = if host.is_empty() || host == DEFAULT_SOCKET_DIR {
            "localhost"
        } else {
            host
        };
        // Without a user or a database name libpq looks nothing up.
        if user.is_empty() {
            return None;
        }
        let port = port.to_string();
        self.lines.iter().find_map(|line| {
            let rest = field(line, host.as_bytes())?;
            let rest = field(rest, port.as_bytes())?;
            dbnames
                .iter()
                .filter(|db| !db.is_empty())
                .find_map(|db| field(field(rest, db.as_bytes())?, user.as_bytes()))
                .map(password)
        })
    }
}

/// Matches the first field of `line` against `wanted` as libpq does, and
/// returns the rest of the line after the field's colon. `*` alone matches
/// anything; a backslash makes the next byte literal (`\:`, `\\`, `\*`).
/// An unescaped colon matches a colon of `wanted` (an IPv6 address), as
/// long as some of `wanted` is left to match.
fn field<'l>(line: &'l [u8], wanted: &[u8]) -> Option<&'l [u8]> {
    if let Some(rest) = line.strip_prefix(b"*:") {
        return Some(rest);
    }
    let (mut at, mut matched) = (0, 0);
    loop {
        let escaped = line.get(at) == Some(&b'\\');
        if escaped {
            at += 1;
        }
        let byte = *line.get(at)?;
        if byte == b':' && !escaped && matched == wanted.len() {
            return Some(&line[at + 1..]);
        }
        if wanted.get(matched) != Some(&byte) {
            return None;
        }
        at += 1;
        matched += 1;
    }
}

/// The password field: up to the next unescaped colon, backslashes removed
/// (but a trailing one kept).
fn password(rest: &[u8]) -> Vec<u8> {
    let mut password = Vec::new();
    let mut at = 0;
    while let Some(&byte) = rest.get(at) {
        if byte == b':' {
            break;
        }
        if byte == b'\\' && at + 1 < rest.len() {
            at += 1;
        }
        password.push(rest[at]);
        at += 1;
    }
    password
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;
    use std::time::{Duration, Instant};

    /// Each case: the file, then host, port, database and user, then the
    /// password libpq would pick.
    type Case<'a> = (&'a str, &'a str, u16, &'a str, &'a str, Option<&'a str>);

    fn check(cases: &[Case]) {
        for &(file, host, port, db, user, wanted) in cases {
            let found = Passfile::parse(file.as_bytes()).password(host, port, db, user);
            assert_eq!(
                found.as_deref(),
                wanted.map(str::as_bytes),
                "{file:?} for {host}:{port}:{db}:{user}"
            );
        }
    }

    #[test]
    fn the_first_matching_line_wins_and_star_matches_anything() {
        let file = "# comment\n\
                    other:5432:*:replicator:nope\n\
                    10.0.0.1:5432:*:replicator:first\n\
                    *:*:*:*:second\n";
        let single = "10.0.0.1:5432:*:replicator:x\n";
        check(&[
            (file, "10.0.0.1", 5432, "db", "replicator", Some("first")),
            (file, "10.0.0.1", 5433, "db", "replicator", Some("second")),
            (file, "other", 5432, "db", "replicator", Some("nope")),
            (single, "other", 5432, "d", "replicator", None),
            // A field is whole: no prefix, no longer value.
            (single, "10.0.0.1", 5432, "d", "repl", None),
            (single, "10.0.0.11", 5432, "d", "replicator", None),
            (single, "10.0.0.1", 54321, "d", "replicator", None),
            // "*" only as the whole field.
            ("h*:1:d:u:x\n", "hx", 1, "d", "u", None),
        ]);
    }

    #[test]
    fn backslashes_escape_colons_backslashes_and_stars() {
        check(&[
            ("h:1:d:u:s\\:cret\n", "h", 1, "d", "u", Some("s:cret")),
            ("h:1:d:u:a\\\\b\n", "h", 1, "d", "u", Some("a\\b")),
            // The password ends at an unescaped colon; a trailing backslash
            // stays; it may be empty.
            ("h:1:d:u:pw:extra\n", "h", 1, "d", "u", Some("pw")),
            ("h:1:d:u:pw\\\n", "h", 1, "d", "u", Some("pw\\")),
            ("h:1:d:u:\n", "h", 1, "d", "u", Some("")),
            // Four fields: no password field, no match.
            ("h:1:d:u\n", "h", 1, "d", "u", None),
            // An escaped colon in a field matches a colon; an escaped star
            // is a star, not a wildcard.
            ("a\\:b:1:d:u:x\n", "a:b", 1, "d", "u", Some("x")),
            ("h:1:\\*:u:x\n", "h", 1, "db", "u", None),
            ("h:1:\\*:u:x\n", "h", 1, "*", "u", Some("x")),
            // libpq lets an unescaped colon match a colon of an IPv6 address.
            ("fe80::1:5432:d:u:x\n", "fe80::1", 5432, "d", "u", Some("x")),
            ("\\fe80\\:\\:1:1:d:u:x\n", "fe80::1", 1, "d", "u", Some("x")),
        ]);
    }

    #[test]
    fn lines_end_with_crlf_or_not_and_comments_are_skipped() {
        check(&[
            ("h:1:d:u:x\r\n", "h", 1, "d", "u", Some("x")),
            ("h:1:d:u:x", "h", 1, "d", "u", Some("x")),
            ("#h:1:d:u:x\nh:1:d:u:y", "h", 1, "d", "u", Some("y")),
            // Only a leading '#' makes a comment.
            (" #h:1:d:u:x\n", " #h", 1, "d", "u", Some("x")),
            ("\n\r\n\nh:1:d:u:x\n", "h", 1, "d", "u", Some("x")),
        ]);
    }

    #[test]
    fn localhost_stands_for_the_default_socket_directory_and_no_host() {
        let file = "localhost:5432:*:postgres:local\n/tmp/sock:5432:*:postgres:tmp\n";
        check(&[
            (
                file,
                DEFAULT_SOCKET_DIR,
                5432,
                "d",
                "postgres",
                Some("local"),
            ),
            (file, "", 5432, "d", "postgres", Some("local")),
            (file, "/tmp/sock", 5432, "d", "postgres", Some("tmp")),
            (file, "/run/postgresql", 5432, "d", "postgres", None),
            // No user or no database name: libpq looks nothing up.
            ("*:*:*:*:x\n", "h", 1, "", "u", None),
            ("*:*:*:*:x\n", "h", 1, "d", "", None),
        ]);
    }

    #[test]
    fn a_replication_line_serves_the_first_of_several_databases() {
        let file = Passfile::parse(b"h:1:replication:u:repl\nh:1:postgres:u:db\n");
        assert_eq!(
            file.password_for_any("h", 1, &["postgres", "replication"], "u"),
            Some(b"repl".to_vec())
        );
        assert_eq!(file.password("h", 1, "postgres", "u"), Some(b"db".to_vec()));
        assert_eq!(file.password_for_any("h", 1, &["other"], "u"), None);
    }

    #[test]
    fn a_password_that_is_not_utf8_is_kept_as_bytes() {
        let file = Passfile::parse(b"h:1:d:u:\xff\xfe\n");
        assert_eq!(file.password("h", 1, "d", "u"), Some(vec![0xff, 0xfe]));
        assert_eq!(format!("{file:?}"), "Passfile(1 lines)");
    }

    #[test]
    fn a_regular_file_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pgpass");
        std::fs::write(&f, "10.0.0.1:5432:*:replicator:s\\:cret\n").unwrap();
        let file = Passfile::read(&f).unwrap();
        assert_eq!(
            file.password("10.0.0.1", 5432, "postgres", "replicator"),
            Some(b"s:cret".to_vec())
        );
        let e = Passfile::read(&dir.path().join("none")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn a_symbolic_link_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("secret");
        std::fs::write(&target, "*:*:*:*:hunter2\n").unwrap();
        let link = dir.path().join("pgpass");
        symlink(&target, &link).unwrap();
        let e = Passfile::read(&link).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert!(!e.to_string().contains("hunter2"));
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pgpass");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        // No writer ever opens it: a blocking open would wait forever.
        let started = Instant::now();
        let (tx, rx) = std::sync::mpsc::channel();
        let path = fifo.clone();
        std::thread::spawn(move || {
            let _ = tx.send(Passfile::read(&path).map(drop));
        });
        let e = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("reading a FIFO blocked")
            .unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn a_device_and_a_directory_are_refused() {
        for path in ["/dev/zero", "/"] {
            let e = Passfile::read(Path::new(path)).unwrap_err();
            assert!(e.to_string().contains("not a regular file"), "{path}: {e}");
        }
    }

    #[test]
    fn an_oversized_file_is_refused_and_not_repeated() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pgpass");
        let line = "h:1:d:u:hunter2\n";
        let content = line.repeat(MAX_SIZE as usize / line.len() + 1);
        std::fs::write(&f, &content).unwrap();
        let e = Passfile::read(&f).unwrap_err();
        assert_eq!(e.to_string(), "is larger than 64 KiB");
        // Exactly the limit is fine.
        std::fs::write(&f, &content.as_bytes()[..MAX_SIZE as usize]).unwrap();
        let file = Passfile::read(&f).unwrap();
        assert_eq!(file.password("h", 1, "d", "u"), Some(b"hunter2".to_vec()));
    }
}
