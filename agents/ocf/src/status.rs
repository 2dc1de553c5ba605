//! The OCF 1.1 return codes.

use std::fmt;

/// Every exit code an OCF resource agent may return (OCF 1.1, section 11).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    Success,
    ErrGeneric,
    ErrArgs,
    ErrUnimplemented,
    ErrPerm,
    ErrInstalled,
    ErrConfigured,
    NotRunning,
    RunningPromoted,
    FailedPromoted,
    Degraded,
    DegradedPromoted,
}

impl Status {
    pub const ALL: [Status; 12] = [
        Status::Success,
        Status::ErrGeneric,
        Status::ErrArgs,
        Status::ErrUnimplemented,
        Status::ErrPerm,
        Status::ErrInstalled,
        Status::ErrConfigured,
        Status::NotRunning,
        Status::RunningPromoted,
        Status::FailedPromoted,
        Status::Degraded,
        Status::DegradedPromoted,
    ];

    pub fn code(self) -> u8 {
        match self {
            Status::Success => 0,
            Status::ErrGeneric => 1,
            Status::ErrArgs => 2,
            Status::ErrUnimplemented => 3,
            Status::ErrPerm => 4,
            Status::ErrInstalled => 5,
            Status::ErrConfigured => 6,
            Status::NotRunning => 7,
            Status::RunningPromoted => 8,
            Status::FailedPromoted => 9,
            Status::Degraded => 190,
            Status::DegradedPromoted => 191,
        }
    }

    /// The name resource-agents' shell library and ocft use for the code.
    pub fn name(self) -> &'static str {
        match self {
            Status::Success => "OCF_SUCCESS",
            Status::ErrGeneric => "OCF_ERR_GENERIC",
            Status::ErrArgs => "OCF_ERR_ARGS",
            Status::ErrUnimplemented => "OCF_ERR_UNIMPLEMENTED",
            Status::ErrPerm => "OCF_ERR_PERM",
            Status::ErrInstalled => "OCF_ERR_INSTALLED",
            Status::ErrConfigured => "OCF_ERR_CONFIGURED",
            Status::NotRunning => "OCF_NOT_RUNNING",
            Status::RunningPromoted => "OCF_RUNNING_PROMOTED",
            Status::FailedPromoted => "OCF_FAILED_PROMOTED",
            Status::Degraded => "OCF_DEGRADED",
            Status::DegradedPromoted => "OCF_DEGRADED_PROMOTED",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_ones_the_ocf_standard_assigns() {
        let codes: Vec<u8> = Status::ALL.iter().map(|s| s.code()).collect();
        assert_eq!(codes, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 190, 191]);
    }
}
