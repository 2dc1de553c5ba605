//! The PCP password file (`.pcppass`, `PCPPASSFILE`): the agent never
//! takes a password on a command line or in the CIB, it reads the same
//! file the `pcp_*` programs read.
//!
//! Each line is `host:port:user:password`; a field that is exactly `*`
//! matches anything, `\` escapes a `:` or a `\`, and the first matching
//! line wins. For a unix socket the host is the socket directory as
//! given. Like pcp_* programs (pgpool-II 4.3), a file that is not a
//! regular file or that the group or others may read is ignored, here
//! with an error that says so.

use crate::pcp::{PcpError, PcpErrorKind};
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

/// A password file is a few lines; more is not a password file.
const MAX_SIZE: u64 = 64 * 1024;

/// The password for `user` at `host`:`port` in the file at `path`, or
/// `None` when no line matches. The file is opened without following a
/// symlink, must be a regular file without group or world access, and is
/// read up to 64 KiB; its content never appears in an error.
pub fn read_password(
    path: &Path,
    host: &str,
    port: u16,
    user: &str,
) -> Result<Option<String>, PcpError> {
    let fail = |what: String| PcpError::new(PcpErrorKind::Config, what);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| fail(format!("PCP password file {}: {e}", path.display())))?;
    let meta = file
        .metadata()
        .map_err(|e| fail(format!("PCP password file {}: {e}", path.display())))?;
    if !meta.file_type().is_file() {
        return Err(fail(format!(
            "PCP password file {} is not a regular file",
            path.display()
        )));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(fail(format!(
            "PCP password file {} has group or world access (mode {:o}); pcp tools ignore it, make it 0600",
            path.display(),
            meta.mode() & 0o7777
        )));
    }
    let mut content = String::new();
    file.take(MAX_SIZE)
        .read_to_string(&mut content)
        .map_err(|e| fail(format!("PCP password file {}: {e}", path.display())))?;
    Ok(lookup(&content, host, &port.to_string(), user))
}

/// The password of the first line of `content` that matches.
pub fn lookup(content: &str, host: &str, port: &str, user: &str) -> Option<String> {
    content.lines().find_map(|line| {
        let fields = split_fields(line);
        if fields.len() < 4 {
            return None;
        }
        let matches = |pattern: &(String, bool), value: &str| {
            // Only an unescaped lone `*` is a wildcard.
            (pattern.0 == "*" && !pattern.1) || pattern.0 == value
        };
        (matches(&fields[0], host) && matches(&fields[1], port) && matches(&fields[2], user))
            .then(|| fields[3].0.clone())
    })
}

/// The `:`-separated fields of a line with escapes removed, each with
/// whether it held an escape (so that `\*` is a literal star).
fn split_fields(line: &str) -> Vec<(String, bool)> {
    let mut fields = vec![(String::new(), false)];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        let n = fields.len();
        let last = &mut fields[n - 1];
        match c {
            '\\' => {
                if let Some(escaped) = chars.next() {
                    last.0.push(escaped);
                    last.1 = true;
                }
            }
            // The password is the fourth field and ends at the next `:`.
            ':' if n == 4 => break,
            ':' => fields.push((String::new(), false)),
            c => last.0.push(c),
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_first_matching_line_wins_and_stars_match_anything() {
        let file = "# comment lines simply never match\n\
                    /run/pgpool:9898:admin:first\n\
                    *:*:admin:second\n\
                    *:9999:*:third\n";
        assert_eq!(
            lookup(file, "/run/pgpool", "9898", "admin").as_deref(),
            Some("first")
        );
        assert_eq!(
            lookup(file, "127.0.0.1", "9898", "admin").as_deref(),
            Some("second")
        );
        assert_eq!(
            lookup(file, "/tmp", "9999", "other").as_deref(),
            Some("third")
        );
        assert_eq!(lookup(file, "/tmp", "9898", "other"), None);
    }

    #[test]
    fn backslashes_escape_colons_and_stars() {
        let file = "*:*:ad\\:min:pa\\:ss\\\\word:ignored\n\\*:*:u:literal-star-host\n";
        assert_eq!(
            lookup(file, "h", "1", "ad:min").as_deref(),
            Some("pa:ss\\word")
        );
        assert_eq!(lookup(file, "h", "1", "u"), None);
        assert_eq!(
            lookup(file, "*", "1", "u").as_deref(),
            Some("literal-star-host")
        );
    }

    #[test]
    fn short_lines_never_match() {
        assert_eq!(lookup("*:*:admin\n", "h", "1", "admin"), None);
        assert_eq!(
            lookup("*:*:admin:\n", "h", "1", "admin").as_deref(),
            Some("")
        );
    }

    #[test]
    fn a_readable_by_others_file_or_a_symlink_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pcppass");
        std::fs::write(&path, "*:*:admin:secret\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = read_password(&path, "h", 9898, "admin").unwrap_err();
        assert!(e.reason.contains("group or world access"), "{e}");
        assert!(!e.reason.contains("secret"));

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(
            read_password(&path, "h", 9898, "admin").unwrap().as_deref(),
            Some("secret")
        );

        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert!(read_password(&link, "h", 9898, "admin").is_err());
        assert!(read_password(dir.path(), "h", 9898, "admin").is_err());
    }
}
