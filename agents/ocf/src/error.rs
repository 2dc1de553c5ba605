//! The one error type of every agent: an OCF status and the reason an operator reads.

use crate::Status;
use std::fmt;

/// An action that did not succeed: which OCF code Pacemaker must see, and why.
///
/// Errors are created where the failure is understood, carry their code up
/// through `?`, and are turned into an exit code, an `ocf-exit-reason:` line
/// and a log line in exactly one place (`dispatch`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OcfError {
    status: Status,
    reason: String,
}

pub type Result<T> = std::result::Result<T, OcfError>;

impl OcfError {
    pub fn new(status: Status, reason: impl Into<String>) -> Self {
        OcfError {
            status,
            reason: one_line(reason.into()),
        }
    }

    pub fn generic(reason: impl Into<String>) -> Self {
        Self::new(Status::ErrGeneric, reason)
    }

    pub fn unimplemented(reason: impl Into<String>) -> Self {
        Self::new(Status::ErrUnimplemented, reason)
    }

    pub fn perm(reason: impl Into<String>) -> Self {
        Self::new(Status::ErrPerm, reason)
    }

    pub fn installed(reason: impl Into<String>) -> Self {
        Self::new(Status::ErrInstalled, reason)
    }

    pub fn configured(reason: impl Into<String>) -> Self {
        Self::new(Status::ErrConfigured, reason)
    }

    pub fn status(&self) -> Status {
        self.status
    }

    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// Prefixes the reason with what was being done, keeping the status.
    pub fn context(self, what: impl fmt::Display) -> Self {
        OcfError {
            status: self.status,
            reason: one_line(format!("{what}: {}", self.reason)),
        }
    }
}

/// Pacemaker reads one `ocf-exit-reason:` line, and a log line is one line:
/// control characters (a newline in a server's message or a path) become
/// spaces.
fn one_line(reason: String) -> String {
    if reason.chars().any(char::is_control) {
        reason
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect()
    } else {
        reason
    }
}

impl fmt::Display for OcfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for OcfError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_keeps_the_status_and_prefixes_the_reason() {
        let e = OcfError::perm("owned by root").context("/var/lib/pgsql");
        assert_eq!(e.status(), Status::ErrPerm);
        assert_eq!(e.reason(), "/var/lib/pgsql: owned by root");
    }

    #[test]
    fn reasons_are_one_line() {
        let e = OcfError::generic("FATAL: x\nDETAIL: y\r").context("a\tb");
        assert_eq!(e.reason(), "a b: FATAL: x DETAIL: y ");
    }
}
