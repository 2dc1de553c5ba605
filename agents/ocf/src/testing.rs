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

/// The meta-data checks every agent's tests make, in one call: `binary
/// meta-data` prints exactly the checked-in `metadata/NAME.xml`, needs no
/// environment, and is valid against resource-agents' `ra-api-1.dtd` (as
/// ocf-tester checks it), its `metadata.rng` and pcs's OCF 1.1 schema.
/// Unknown actions are unimplemented (3) and a call without an action is a
/// usage error (2).
#[track_caller]
pub fn check_metadata(binary: &str, checked_in: &std::path::Path) {
    let xml = Agent::new(binary)
        .run("meta-data")
        .expect(Status::Success)
        .stdout;
    let file = std::fs::read_to_string(checked_in).unwrap_or_default();
    assert!(
        xml == file,
        "{} is out of date: run `cargo run -p tusk-docgen -- metadata metadata`",
        checked_in.display()
    );
    Agent::new(binary)
        .run("no_such_action")
        .expect(Status::ErrUnimplemented);
    let usage = Agent::new(binary).run_without_action();
    assert_eq!(usage.code, 2, "{}", usage.stderr);
    // ocf-tester pipes meta-data into `xmllint --noout --valid -` from the
    // directory that holds ra-api-1.dtd, which the DOCTYPE names.
    let checks: [(&[&str], &str); 3] = [
        (&["--noout", "--valid"], "/usr/share/resource-agents"),
        (
            &[
                "--noout",
                "--relaxng",
                "/usr/share/resource-agents/metadata.rng",
            ],
            "/",
        ),
        (
            &["--noout", "--relaxng", "/usr/share/pcs/data/ocf-1.1.rng"],
            "/",
        ),
    ];
    for (args, cwd) in checks {
        let (ok, err) = xmllint(args, cwd, &xml);
        assert!(ok, "xmllint {args:?}: {err}");
    }
}

fn xmllint(args: &[&str], cwd: &str, xml: &str) -> (bool, String) {
    use std::io::Write;
    let mut child = Command::new("xmllint")
        .args(args)
        .arg("-")
        .current_dir(cwd)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("xmllint (install libxml2-utils)");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(xml.as_bytes())
        .expect("writing to xmllint");
    let out = child.wait_with_output().expect("xmllint");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
