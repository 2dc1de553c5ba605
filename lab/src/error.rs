//! The failures a caller of the lab may want to tell apart; everything else
//! is an `anyhow::Error` with context. These travel inside `anyhow::Error`
//! too: `err.downcast_ref::<LabError>()` finds them.

use std::fmt;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabError {
    NotRoot,
    /// A program the lab runs is not installed.
    MissingProgram {
        program: &'static str,
        package: &'static str,
    },
    /// The kernel (or a container around us) refuses new namespaces.
    NamespacesUnavailable(String),
    AlreadyUp(PathBuf),
    NotUp(PathBuf),
    /// The node is powered off (crashed or fenced) and cannot run commands.
    NodeDown(String),
}

impl fmt::Display for LabError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LabError::NotRoot => write!(f, "the lab needs root (namespaces, mounts, veths)"),
            LabError::MissingProgram { program, package } => {
                write!(f, "{program} not found: install the Debian package {package} (apt-get install {package})")
            }
            LabError::NamespacesUnavailable(why) => {
                write!(f, "cannot create namespaces here: {why}")
            }
            LabError::AlreadyUp(dir) => {
                write!(
                    f,
                    "a lab is already up in {}; end it with `tusk-lab down` (TUSK_LAB_DIR={0})",
                    dir.display()
                )
            }
            LabError::NotUp(dir) => write!(f, "no lab is up in {}", dir.display()),
            LabError::NodeDown(node) => write!(
                f,
                "{node} is powered off (crashed or fenced); `tusk-lab restart {node}`"
            ),
        }
    }
}

impl std::error::Error for LabError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_program_names_the_package_to_install() {
        let e = LabError::MissingProgram {
            program: "crm_mon",
            package: "pacemaker-cli-utils",
        };
        assert_eq!(
            e.to_string(),
            "crm_mon not found: install the Debian package pacemaker-cli-utils (apt-get install pacemaker-cli-utils)"
        );
    }
}
