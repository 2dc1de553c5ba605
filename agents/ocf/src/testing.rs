//! Test support for agents: run an agent binary the way Pacemaker does,
//! with a chosen environment and nothing else of the test's, and check the
//! OCF status it answers.
//!
//! ```ignore
//! Agent::new(env!("CARGO_BIN_EXE_postgresql"))
//!     .param("pgdata", "/no/such/dir")
//!     .run("validate-all")
//!     .expect(Status::ErrInstalled);
//! ```

use crate::Status;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `AGENT ACTION` with a chosen environment, the way Pacemaker runs it.
pub struct Agent {
    cmd: Command,
}

impl Agent {
    pub fn new(binary: impl AsRef<std::ffi::OsStr>) -> Agent {
        let mut cmd = Command::new(binary);
        cmd.env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("OCF_ROOT", "/usr/lib/ocf")
            .env("OCF_RESOURCE_INSTANCE", "pg-test");
        Agent { cmd }
    }

    pub fn param(mut self, name: &str, value: impl AsRef<std::ffi::OsStr>) -> Agent {
        self.cmd.env(format!("OCF_RESKEY_{name}"), value);
        self
    }

    pub fn env(mut self, name: &str, value: &str) -> Agent {
        self.cmd.env(name, value);
        self
    }

    pub fn timeout_ms(self, ms: u64) -> Agent {
        self.env("OCF_RESKEY_CRM_meta_timeout", &ms.to_string())
    }

    pub fn run(mut self, action: &str) -> Outcome {
        self.cmd.arg(action);
        self.finish(action)
    }

    /// The command that `run(action)` would run, for callers that measure it.
    pub fn into_command(mut self, action: &str) -> Command {
        self.cmd.arg(action);
        self.cmd
    }

    pub fn run_without_action(self) -> Outcome {
        self.finish("(no action)")
    }

    fn finish(mut self, action: &str) -> Outcome {
        let started = Instant::now();
        let out = self
            .cmd
            .stdin(Stdio::null())
            .output()
            .expect("run the agent");
        Outcome {
            action: action.to_string(),
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            took: started.elapsed(),
        }
    }
}

#[derive(Debug)]
pub struct Outcome {
    pub action: String,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub took: Duration,
}

impl Outcome {
    /// Asserts the OCF status, showing what the agent said when it differs.
    #[track_caller]
    pub fn expect(self, status: Status) -> Outcome {
        assert_eq!(
            self.code,
            i32::from(status.code()),
            "{} exited {} instead of {status}; stderr:\n{}",
            self.action,
            self.code,
            self.stderr
        );
        self
    }

    /// The status the agent exited with, if it is an OCF one.
    pub fn status(&self) -> Option<Status> {
        Status::ALL
            .into_iter()
            .find(|s| i32::from(s.code()) == self.code)
    }

    /// The `ocf-exit-reason:` line Pacemaker shows to the operator.
    pub fn reason(&self) -> &str {
        self.stderr
            .lines()
            .find_map(|l| l.strip_prefix("ocf-exit-reason:"))
            .unwrap_or("")
    }
}
